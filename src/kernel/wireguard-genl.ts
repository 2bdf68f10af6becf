/**
 * Kernel WireGuard over generic netlink: the family lookup through nlctrl, and a device configured
 * with WG_CMD_SET_DEVICE / read with the WG_CMD_GET_DEVICE dump (messages of wg-genetlink.ts and
 * wg-genetlink-dump.ts). Each exchange runs on its own short-lived NETLINK_GENERIC socket
 * (nft-netlink.ts's exchange(), as the nftables writers do): a few per lease event at most.
 * A SET split in several messages sends them one after another, each waiting for its ACK, so a
 * refusal stops the rest (the kernel would go on with the next message of one datagram).
 * A dump marked NLM_F_DUMP_INTR (the device changed meanwhile) is read again, a few times, as
 * `wg` does. KernelWireguardDevice has UserspaceWireguard's shape, so kernel-wireguard.ts keeps
 * one code path for both; the link itself is made and deleted over rtnetlink by the caller.
 */
import { NLM_F_DUMP_INTR } from './codec';
import { exchange, kernelError, sequencer } from './nft-netlink';
import { decodeFamily, encodeGetDevice, encodeGetFamily, encodeSetDevice, GENL_ID_CTRL, type GenlFamily, type WgDeviceSet, type WgIface, WG_SET_MAX_BYTES } from './wg-genetlink';
import { decodeGetDevice, type WgDeviceDump } from './wg-genetlink-dump';
import type { UapiDevice, UapiPeer } from '../domain/wg-uapi';

export const NETLINK_GENERIC = 16;
const ENOENT = -2;
const DUMP_RETRIES = 3;
const nextSeq = sequencer();

async function request(what: string, msg: Buffer, timeoutMs: number) {
  const seq = nextSeq();
  msg.writeUInt32LE(seq, 8);
  const r = (await exchange(msg, [seq], timeoutMs, undefined, undefined, NETLINK_GENERIC)).get(seq);
  if (!r) throw kernelError(what, -71 /* EPROTO: no answer for our seq */);
  return r;
}

/** The generic netlink family of that name, or null when the kernel has none (ENOENT). */
export async function resolveGenlFamily(name: string, timeoutMs = 5000): Promise<GenlFamily | null> {
  const what = `resolve generic netlink family "${name}"`;
  const r = await request(what, encodeGetFamily(name), timeoutMs);
  if (r.errno === ENOENT) return null;
  if (r.errno) throw kernelError(what, r.errno);
  const reply = r.msgs.find((m) => m.type === GENL_ID_CTRL);
  if (!reply) throw kernelError(what, -71);
  return decodeFamily(reply.payload);
}

/** WG_CMD_GET_DEVICE of one device, every message of the dump decoded together. */
export async function wgGetDevice(family: GenlFamily, iface: WgIface, timeoutMs = 5000): Promise<WgDeviceDump> {
  const what = `read wireguard device ${'name' in iface ? `"${iface.name}"` : `#${iface.index}`}`;
  for (let attempt = 1; ; attempt++) {
    const r = await request(what, encodeGetDevice(iface, family.id), timeoutMs);
    if (r.errno) throw kernelError(what, r.errno);
    if (r.doneErrno) throw kernelError(what, r.doneErrno);
    const interrupted = r.msgs.some((m) => (m.flags & NLM_F_DUMP_INTR) !== 0);
    if (!interrupted || attempt >= DUMP_RETRIES) return decodeGetDevice(r.msgs.filter((m) => m.type === family.id).map((m) => m.payload));
  }
}

/** WG_CMD_SET_DEVICE, split as needed, the parts sent in order. */
export async function wgSetDevice(family: GenlFamily, dev: WgDeviceSet, timeoutMs = 5000, maxBytes = WG_SET_MAX_BYTES): Promise<void> {
  const what = `configure wireguard device ${'name' in dev.iface ? `"${dev.iface.name}"` : `#${dev.iface.index}`}`;
  const msgs = encodeSetDevice(dev, family.id, maxBytes);
  for (const [i, msg] of msgs.entries()) {
    const r = await request(msgs.length > 1 ? `${what} (message ${i + 1} of ${msgs.length})` : what, msg, timeoutMs);
    if (r.errno) throw kernelError(msgs.length > 1 ? `${what} (message ${i + 1} of ${msgs.length})` : what, r.errno);
  }
}

/** The peers as the UAPI path lists them: PSK only when set, keepalive only when on. */
export function uapiView(d: WgDeviceDump): UapiDevice {
  const peers: UapiPeer[] = d.peers.map((p) => ({
    publicKey: p.publicKey,
    ...(p.endpoint ? { endpoint: p.endpoint } : {}),
    allowedIPs: [...p.allowedIPs],
    ...(p.presharedKey ? { presharedKey: p.presharedKey } : {}),
    ...(p.persistentKeepalive ? { persistentKeepalive: p.persistentKeepalive } : {}),
  }));
  return { ...(d.privateKey ? { privateKey: d.privateKey } : {}), listenPort: d.listenPort, peers };
}

/** The SET of a peer update with the UAPI path's meaning: allowed IPs replaced, keepalive always
 *  set (0 = off), the PSK when given; `remove` entries removed. */
export function peersSet(iface: WgIface, peers: readonly UapiPeer[], remove: readonly string[]): WgDeviceSet {
  return {
    iface,
    peers: [
      ...peers.map((p) => ({ publicKey: p.publicKey, replaceAllowedIPs: true, presharedKey: p.presharedKey, endpoint: p.endpoint, persistentKeepalive: p.persistentKeepalive ?? 0, allowedIPs: p.allowedIPs })),
      ...remove.map((publicKey) => ({ publicKey, remove: true })),
    ],
  };
}

/** A kernel WireGuard device, with the methods kernel-wireguard.ts uses of UserspaceWireguard. */
export class KernelWireguardDevice {
  private open = true;
  constructor(
    private readonly family: GenlFamily,
    private readonly name: string,
    private readonly timeoutMs: number,
    /** Deletes the device's link (over rtnetlink) if it is still ours. */
    private readonly deleteLink: () => Promise<void>,
  ) {}

  get running(): boolean {
    return this.open;
  }

  async get(): Promise<UapiDevice> {
    return uapiView(await wgGetDevice(this.family, { name: this.name }, this.timeoutMs));
  }

  configure(dev: { privateKey: string; listenPort: number }): Promise<void> {
    return wgSetDevice(this.family, { iface: { name: this.name }, privateKey: dev.privateKey, listenPort: dev.listenPort }, this.timeoutMs);
  }

  setPeers(peers: readonly UapiPeer[], remove: readonly string[] = []): Promise<void> {
    return wgSetDevice(this.family, peersSet({ name: this.name }, peers, remove), this.timeoutMs);
  }

  /** Delete the device (as wireguard-go's exit takes its TUN device with it). */
  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    await this.deleteLink();
  }
}
