/**
 * The synthetic fleet of the scale regression checks (test/unit/scale-budget.test.ts counts kernel
 * calls, scale-allocations.test.ts counts bytes): a /13 vxlan overlay split in /24 leases, peers on
 * documentation-range underlay addresses reused round-robin (nothing is sent: the kernel is the
 * fake one), and a fake kernel with this host's eth0 at 192.0.2.1 under a dataplane for it.
 */
import pino from 'pino';
import { FakeKernel } from '../fakes/fake-kernel';
import { OverlayDataplane } from '../../src/reconcile/overlay-dataplane';
import { SerialQueue } from '../../src/util/serial-queue';
import { parseNetworkConfig } from '../../src/domain/network-config';
import { cidr, parseCidr, parseIPv4 } from '../../src/domain/ipv4';
import { vtepMacFor } from '../../src/domain/mac';
import type { Lease } from '../../src/domain/lease';
import type { PublicInterface } from '../../src/host/public-interface';

export const scaleLog = pino({ level: 'silent' });
export const scaleConfig = parseNetworkConfig('{"Network":"10.0.0.0/13","Backend":{"Type":"vxlan","VNI":1}}');
const underlay = ['198.51.100', '203.0.113'].flatMap((n) => Array.from({ length: 254 }, (_, h) => `${n}.${h + 1}`));
const hex = (n: number): string => n.toString(16).padStart(2, '0');

/** The lease of slot `slot` (its /24 is the slot-th of the overlay); slot 1 is this host's, whose VTEP MAC is derived as the daemon derives it. */
export const scaleLease = (slot: number, publicIP = underlay[slot % underlay.length]!): Lease => ({
  subnet: cidr((parseIPv4('10.0.0.0') + slot * 256) >>> 0, 24),
  attrs: { publicIP, backendType: 'vxlan', vxlan: { vni: 1, vtepMac: slot === 1 ? vtepMacFor(1, publicIP) : `0e:00:00:00:${hex(slot >> 8)}:${hex(slot & 255)}` } },
  etcdLease: '1',
});

/** A fake kernel with eth0, a dataplane on it, this host's lease (slot 1) and `peers` peer leases (slots 2…). */
export function scaleFleet(peers: number): { kernel: FakeKernel; pub: PublicInterface; dp: OverlayDataplane; own: Lease; peers: Lease[] } {
  const kernel = new FakeKernel();
  const eth = kernel.addDevice('eth0', { mtu: 1500, up: true, cidr: '192.0.2.1/24' });
  const pub: PublicInterface = { link: eth, address: '192.0.2.1', publicIP: '192.0.2.1', networks: [parseCidr('192.0.2.0/24')] };
  const dp = new OverlayDataplane(kernel, new SerialQueue(), scaleLog, scaleConfig, pub);
  return { kernel, pub, dp, own: scaleLease(1, '192.0.2.1'), peers: Array.from({ length: peers }, (_, i) => scaleLease(i + 2)) };
}
