/**
 * Helpers for real-kernel tests. They must only ever run inside a throwaway network namespace
 * (`unshare --net node --test …`). inScratchNetns() walks up our ancestor processes and answers
 * true only if one of them lives in another netns (i.e. someone between it and us unshared the
 * network). PID 1's namespace is often unreadable (no CAP_SYS_PTRACE), so comparing with it fails.
 * Every test file fails otherwise (never skips), so a plain `node --test` never touches the host.
 */
import { execFileSync } from 'node:child_process';
import { after, before } from 'node:test';
import { readFileSync, readlinkSync } from 'node:fs';

export function inScratchNetns(): boolean {
  let mine: string;
  try {
    mine = readlinkSync('/proc/self/ns/net');
  } catch {
    return false;
  }
  let pid = process.ppid;
  for (let hops = 0; pid > 1 && hops < 64; hops++) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) !== mine) return true;
      const m = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      pid = m ? Number(m[1]) : 0;
    } catch {
      return false;
    }
  }
  return false;
}

export const SKIP_REASON = 'kernel tests need root in a scratch network namespace: run them with npm run test:kernel';

/** Run `ip`/`bridge` with arguments (no shell); returns stdout. */
export function run(cmd: 'ip' | 'bridge', ...args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `ip -j …` / `bridge -j …` parsed. */
export function json<T = any>(cmd: 'ip' | 'bridge', ...args: string[]): T {
  const out = run(cmd, '-j', ...args).trim();
  return (out ? JSON.parse(out) : []) as T;
}

export function linkExists(name: string): boolean {
  try {
    run('ip', 'link', 'show', 'dev', name);
    return true;
  } catch {
    return false;
  }
}

/**
 * A parent NIC for vxlan: a dummy if the kernel has it, else one end of a veth pair (some kernels,
 * like this project's CI VM, are built without the dummy driver). Up, with `cidr`.
 */
export function makeParent(name: string, cidr: string): void {
  deleteLinkIfPresent(name);
  try {
    run('ip', 'link', 'add', name, 'type', 'dummy');
  } catch {
    run('ip', 'link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
    run('ip', 'link', 'set', `${name}p`, 'up');
  }
  run('ip', 'addr', 'add', cidr, 'dev', name);
  run('ip', 'link', 'set', name, 'up');
}

export function deleteLinkIfPresent(name: string): void {
  if (linkExists(name)) run('ip', 'link', 'del', name);
}

/** Whether nftables table `ip <table>` exists in this (scratch) namespace. */
export function nftTableExists(table: string): boolean {
  try {
    execFileSync('nft', ['list', 'table', 'ip', table], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Inside a describe(): this test owns nftables tables `ip <tables>` of the scratch namespace. They
 * must not exist before it (fail loudly otherwise) and are deleted after it if they exist.
 */
export function ownNftTables(...tables: string[]): void {
  before(() => {
    for (const t of tables) if (nftTableExists(t)) throw new Error(`table ip ${t} already exists in the scratch netns; this test owns it`);
  });
  after(() => {
    for (const t of tables) if (nftTableExists(t)) execFileSync('nft', ['delete', 'table', 'ip', t]);
  });
}
