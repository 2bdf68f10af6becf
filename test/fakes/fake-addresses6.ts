/**
 * An in-memory Address6Allocator with the store's rules (src/store/address6-store.ts): a random
 * pick never taken, `--ip6` honoured, CONFLICT when another owner holds it, release idempotent.
 * For driver unit tests; the real one is tested against etcd in test/store/address6-store.test.ts.
 */
import { randomBytes } from 'node:crypto';
import type { Address6Allocator } from '../../src/driver/overlays';
import { checkRequestedAddress6, pickAddress6 } from '../../src/domain/addresses-v6';
import { formatCidr6, parseIPv6, type Cidr6 } from '../../src/domain/ipv6';
import { conflict } from '../../src/errors';

export function memoryAddresses6(): Address6Allocator & { held: Map<bigint, string> } {
  const held = new Map<bigint, string>();
  return {
    held,
    async allocate(subnet6: Cidr6, owner: string, requested?: string) {
      const ip = requested ? checkRequestedAddress6(subnet6, requested) : pickAddress6(subnet6, held, randomBytes);
      const had = held.get(ip);
      if (had !== undefined && had !== owner) throw conflict(`address ${requested} is already in use in ${formatCidr6(subnet6)} (owner ${had})`);
      held.set(ip, owner);
      return ip;
    },
    async release(_subnet6: Cidr6, ip: bigint | string) {
      return held.delete(typeof ip === 'bigint' ? ip : parseIPv6(ip));
    },
  };
}
