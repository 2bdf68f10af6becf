/**
 * FakeNeighbourTables: the neighbour and FDB tables of FakeNetlink (fake-netlink.ts), kept as the
 * kernel keeps them: a write to a device that does not exist fails ENODEV; a neighbour is one per (device, IP); an FDB entry one per (device, MAC), except
 * the all-zeros flood entries, one per (device, MAC, dst) as `bridge fdb append` makes them. Entries
 * are stored in canonical spelling (lower-case MAC, the IP as the kernel prints it), so a dump
 * returns what the real adapter returns. FakeNetlink logs the call (and its test hooks) first;
 * deleting a device drops its entries here (dropDevice).
 */
import { macToBuf } from '../../src/kernel/codec';
import type { FdbEntry, IpFamily, NeighbourEntry } from '../../src/kernel/types';
import { anyIp, familyOf } from './fake-v6';

const ZERO_MAC = '00:00:00:00:00:00';

export class FakeNeighbourTables {
  private neighs: NeighbourEntry[] = [];
  private fdb: FdbEntry[] = [];

  /** `requireDevice` throws FakeNetlink's ENODEV, naming `what`, when the device does not exist. */
  constructor(private readonly requireDevice: (ifindex: number, what: string) => unknown) {}

  listNeighbours(ifindex: number, family: IpFamily): NeighbourEntry[] {
    return this.neighs.filter((n) => n.ifindex === ifindex && familyOf(n.ip) === family).map((n) => ({ ...n }));
  }

  /** Stored in canonical spelling; throws (like the adapter) on a malformed IP or MAC first. */
  replaceNeighbour(n: NeighbourEntry): void {
    const ip = anyIp(n.ip, 'neighbour IP');
    const mac = macToBuf(n.mac, 'neighbour MAC') && n.mac.toLowerCase();
    this.requireDevice(n.ifindex, `replace neighbour ${n.ip} lladdr ${n.mac} dev #${n.ifindex}`);
    const entry = { ifindex: n.ifindex, ip, mac, permanent: n.permanent };
    this.neighs = this.neighs.filter((x) => !(x.ifindex === entry.ifindex && x.ip === entry.ip));
    this.neighs.push(entry);
  }

  deleteNeighbour(ifindex: number, ip: string): void {
    const key = anyIp(ip, 'neighbour IP');
    this.neighs = this.neighs.filter((x) => !(x.ifindex === ifindex && x.ip === key));
  }

  listFdb(ifindex: number): FdbEntry[] {
    return this.fdb.filter((f) => f.ifindex === ifindex).map((f) => ({ ...f }));
  }

  /** Stored in canonical spelling; throws (like the adapter) on a malformed MAC or dst first. */
  replaceFdb(f: FdbEntry): void {
    const mac = macToBuf(f.mac, 'fdb MAC') && f.mac.toLowerCase();
    const dst = anyIp(f.dst, 'fdb dst');
    this.requireDevice(f.ifindex, `replace fdb ${f.mac} dst ${f.dst} dev #${f.ifindex}`);
    const entry = { ifindex: f.ifindex, mac, dst, permanent: f.permanent };
    const zero = entry.mac === ZERO_MAC; // flood entries: one per dst (APPEND)
    this.fdb = this.fdb.filter((x) => !(x.ifindex === entry.ifindex && x.mac === entry.mac && (!zero || x.dst === entry.dst)));
    this.fdb.push(entry);
  }

  deleteFdb(ifindex: number, mac: string, dst?: string): void {
    const m = macToBuf(mac, 'fdb MAC') && mac.toLowerCase();
    const d = dst ? anyIp(dst, 'fdb dst') : undefined;
    this.fdb = this.fdb.filter((x) => !(x.ifindex === ifindex && x.mac === m && (!d || x.dst === d)));
  }

  /** A deleted device takes its neighbours and FDB entries with it. */
  dropDevice(ifindex: number): void {
    this.neighs = this.neighs.filter((n) => n.ifindex !== ifindex);
    this.fdb = this.fdb.filter((f) => f.ifindex !== ifindex);
  }
}
