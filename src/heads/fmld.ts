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

/** Hands QEMU a fresh socketpair end under FMLD_FD_NAME; returns ours as a socket. */
async function passChannel(qmp: QmpSession): Promise<FmldPort> {
  const [ours, theirs] = native.socketPair();
  try {
    await qmp.executeWithFds('getfd', { fdname: FMLD_FD_NAME }, [theirs]);
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
  return { socket, close: () => socket.destroy() };
}

/** First attach of the owner: chardev on the passed fd + the virtserialport. */
export async function openFmldPort(qmp: QmpSession): Promise<FmldPort> {
  const port = await passChannel(qmp);
  try {
    await qmp.execute('chardev-add', { id: FMLD_CHARDEV_ID, backend: chardevBackend() });
    await qmp.execute('device_add', {
      driver: 'virtserialport',
      bus: VSER_BUS,
      chardev: FMLD_CHARDEV_ID,
      name: FMLD_PORT_NAME,
      id: FMLD_PORT_ID,
    });
  } catch (e) {
    port.close();
    throw e;
  }
  return port;
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
  const port = await passChannel(qmp);
  try {
    await qmp.execute('chardev-change', { id: FMLD_CHARDEV_ID, backend: chardevBackend() });
  } catch (e) {
    port.close();
    throw e;
  }
  return port;
}
