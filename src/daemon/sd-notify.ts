// Readiness for a service manager: when systemd started us with
// Type=notify it sets NOTIFY_SOCKET, and we tell it we are ready. Node
// cannot send the unix datagram itself, so the message goes through
// systemd-notify, which ships with systemd wherever NOTIFY_SOCKET can be set
// (the unit says NotifyAccess=all, since the sender is our child, and
// systemd-notify waits until systemd has read the message, so it is never
// attributed to a process that already exited).
import { execFile } from 'node:child_process';

/**
 * Sends READY=1 (and our pid as the main pid) when NOTIFY_SOCKET is set;
 * resolves to null when there was nothing to do or it worked, else to one
 * line saying why not — for the log, since the manager's start timeout is
 * what then fails the service.
 */
export function notifyReady(status: string, env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  if (!env.NOTIFY_SOCKET) return Promise.resolve(null);
  return new Promise((resolve) => {
    execFile('systemd-notify', ['--ready', `--pid=${process.pid}`, `--status=${status}`], { env, timeout: 10_000 }, (err, _out, stderr) => {
      resolve(err ? `systemd-notify --ready failed: ${(stderr.trim() || err.message).split('\n')[0]}` : null);
    });
  });
}
