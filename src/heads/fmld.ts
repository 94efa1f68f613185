// The FM-LD channel's plumbing into the owner's VM: a socketpair whose far
// end is passed to QEMU (getfd over SCM_RIGHTS) and becomes the chardev of
// a virtserialport named cxl-mhd.fmld. Only the lease owner's QEMU ever
// gets one, so other guests have no path to the FM-API at all.
import { Socket } from 'node:net';
import { native } from '../native/index.js';
import { FMLD_CHARDEV_ID, FMLD_FD_NAME, FMLD_PORT_ID, FMLD_PORT_NAME, VSER_BUS } from '../qemu/index.js';
import type { QmpSession } from '../qmp/index.js';

export interface FmldPort {
  /** The backend's end of the channel: FM-API requests arrive here. */
  socket: Socket;
  close(): void;
}

function chardevBackend(): Record<string, unknown> {
  return { type: 'socket', data: { addr: { type: 'fd', data: { str: FMLD_FD_NAME } }, server: false } };
}

/**
 * Hands QEMU a fresh socketpair end under FMLD_FD_NAME and sends `then`
 * right behind getfd, in the same round trip (QEMU runs them in order);
 * returns our end as a socket once all of them are answered.
 */
async function passChannel(qmp: QmpSession, then: [string, Record<string, unknown>][]): Promise<FmldPort> {
  const [ours, theirs] = native.socketPair();
  const passed = qmp.executeWithFds('getfd', { fdname: FMLD_FD_NAME }, [theirs]);
  const after = then.map(([command, args]) => qmp.execute(command, args));
  for (const p of after) p.catch(() => undefined);
  try {
    await passed;
  } catch (e) {
    native.close(ours);
    throw e;
  } finally {
    // QEMU holds its own duplicate now (or the call failed): ours must go either way.
    native.close(theirs);
  }
  const socket = new Socket({ fd: ours, readable: true, writable: true });
  // A guest closing its port must not take the backend down.
  socket.on('error', () => socket.destroy());
  const port = { socket, close: () => socket.destroy() };
  try {
    for (const p of after) await p;
  } catch (e) {
    port.close();
    throw e;
  }
  return port;
}

/** First attach of the owner: chardev on the passed fd + the virtserialport. */
export function openFmldPort(qmp: QmpSession): Promise<FmldPort> {
  return passChannel(qmp, [
    ['chardev-add', { id: FMLD_CHARDEV_ID, backend: chardevBackend() }],
    ['device_add', { driver: 'virtserialport', bus: VSER_BUS, chardev: FMLD_CHARDEV_ID, name: FMLD_PORT_NAME, id: FMLD_PORT_ID }],
  ]);
}

/**
 * After a backend restart the owner's port still exists but its chardev's
 * peer died with the old backend. chardev-change swaps in a new socketpair
 * end under the same port, so the guest keeps its /dev/vportNpM and never
 * sees the port vanish. If the VM has no port yet (the old backend died
 * mid-attach), it is created.
 */
export async function reattachFmldPort(qmp: QmpSession): Promise<FmldPort> {
  const chardevs = await qmp.execute<{ label: string }[]>('query-chardev');
  if (!chardevs.some((c) => c.label === FMLD_CHARDEV_ID)) return openFmldPort(qmp);
  return passChannel(qmp, [['chardev-change', { id: FMLD_CHARDEV_ID, backend: chardevBackend() }]]);
}

/** True if the VM has the FM-LD chardev (and so, normally, its port). */
export async function hasFmldPort(qmp: QmpSession): Promise<boolean> {
  const chardevs = await qmp.execute<{ label: string }[]>('query-chardev');
  return chardevs.some((c) => c.label === FMLD_CHARDEV_ID);
}

const gone = (e: unknown) =>
  /not found|no chardev|DeviceNotFound/i.test(`${(e as { errorClass?: string }).errorClass ?? ''} ${(e as Error).message}`);

/**
 * Fences a VM off the FM-API: its virtserialport and chardev are removed
 * (a virtio-serial port unplugs at once, without the guest's help), so its
 * guest has no channel left to speak on. Safe to repeat.
 */
export async function removeFmldPort(qmp: QmpSession): Promise<void> {
  await qmp.execute('device_del', { id: FMLD_PORT_ID }).catch((e) => {
    if (!gone(e)) throw e;
  });
  // The chardev is busy until the port has let go of it.
  for (let i = 0; ; i++) {
    try {
      await qmp.execute('chardev-remove', { id: FMLD_CHARDEV_ID });
      return;
    } catch (e) {
      if (gone(e)) return;
      if (i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
