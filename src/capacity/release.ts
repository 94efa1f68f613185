// The end of a release: blocks a head gave up go back to the pool only once
// QEMU shows that its guest can no longer reach them (Delivery.reachable).
// Until then they stay held by the head, quarantined; this module waits for
// the evidence, keeps asking for it (with backoff, on a guest reset, on a
// repeated 5605h) and hands the grant back to the manager to free or to
// quarantine. docs/security.md states the rule, docs/capacity.md the flow.
import type { Delivery, Departure } from './delivery.js';
import type { Grant } from './grants.js';

export interface SettleHooks {
  deliveryOf: (head: number) => Delivery | undefined;
  /** The grant is still held (its head did not detach, nothing freed it meanwhile). */
  held: (g: Grant) => boolean;
  /** Evidence arrived: free the blocks (journaled, announced). */
  free: (g: Grant) => void;
  /** No evidence yet: hold the blocks, say why (journaled and announced once). */
  quarantine: (g: Grant, reason: string) => void;
}

export interface SettleTiming {
  /** How long a release waits for QEMU's part before answering (the FM client gives up after 10 s). */
  answerWithinMs: number;
  /** First re-check of a quarantined grant; doubles up to `recheckMaxMs`. */
  recheckMs: number;
  recheckMaxMs: number;
}

export const DEFAULT_SETTLE: SettleTiming = { answerWithinMs: 8000, recheckMs: 1000, recheckMaxMs: 30_000 };

const sleep = (ms: number) =>
  new Promise<void>((r) => {
    setTimeout(r, ms).unref();
  });

export class ReleaseSettler {
  private readonly watching = new Set<Grant>();

  constructor(
    private readonly hooks: SettleHooks,
    private readonly timing: SettleTiming,
  ) {}

  /**
   * Waits (bounded) for QEMU to finish its part of a release it accepted,
   * then asks for the evidence. True: the blocks are free. False: they are
   * quarantined, and a watcher keeps asking.
   */
  async settle(g: Grant, gone: Departure): Promise<boolean> {
    const left = await Promise.race([
      gone.then(
        (why) => ({ why }),
        () => null,
      ),
      sleep(this.timing.answerWithinMs).then(() => null),
    ]);
    // What QEMU showed as the device left is the evidence; without it (none taken), QEMU is asked now.
    if (left && (left.why ? this.judge(g, left.why) : await this.recheck(g))) return true;
    if (!left && this.hooks.held(g)) {
      this.hooks.quarantine(
        g,
        `QEMU has not finished removing it after ${this.timing.answerWithinMs} ms (the guest has not completed the unplug)`,
      );
    }
    this.watch(g, gone);
    return !this.hooks.held(g);
  }

  /** Asks QEMU now. True when the blocks are free (now or already). */
  async recheck(g: Grant): Promise<boolean> {
    const d = this.hooks.deliveryOf(g.head);
    if (!d || !this.hooks.held(g)) return !this.hooks.held(g);
    return this.judge(g, await d.reachable(g.delivered).catch((e: Error) => [`cannot tell (${e.message})`]));
  }

  /** Frees the grant on `why` empty (nothing reaches its bytes), else quarantines it with the reasons. True when free. */
  private judge(g: Grant, why: string[]): boolean {
    if (!this.hooks.held(g)) return true;
    if (why.length === 0) {
      this.hooks.free(g);
      return true;
    }
    this.hooks.quarantine(g, why.join('; '));
    return false;
  }

  /** Finishes releases that had begun before a backend restart: a hot-added device still there is asked to leave again. */
  async resume(d: Delivery, waiting: Grant[]): Promise<void> {
    await Promise.all(
      waiting.map(async (g) => {
        let gone: Departure = Promise.resolve(undefined);
        if (g.delivered.deviceId) {
          try {
            gone = (await d.release(g.delivered)).gone;
          } catch {
            // Refused (the device left meanwhile): whether the guest can reach the blocks is asked all the same.
          }
        }
        return this.settle(g, gone);
      }),
    );
  }

  private watch(g: Grant, gone: Departure): void {
    if (this.watching.has(g)) return;
    this.watching.add(g);
    void (async () => {
      try {
        let delay = this.timing.recheckMs;
        // A device still leaving: its departure is the first moment worth asking again.
        await Promise.race([gone.catch(() => undefined), sleep(delay)]);
        while (this.hooks.held(g)) {
          if (await this.recheck(g)) break;
          await sleep(delay);
          delay = Math.min(delay * 2, this.timing.recheckMaxMs);
        }
      } finally {
        this.watching.delete(g);
      }
    })();
  }
}
