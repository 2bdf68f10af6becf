/**
 * A fake upstream DNS server for Docker labs: python3 in the lab's LAN namespace on
 * 192.0.2.254:53 (UDP and TCP), the server every lab dockerd is told to use (`--dns`), so no query
 * ever leaves the lab. It answers A queries for the names of its zone (authoritative), empty
 * NOERROR for other types of those names, NXDOMAIN for everything else; a name with more
 * addresses than `udpMax` gets TC over UDP and the whole list over TCP (Docker's resolver then
 * retries over TCP, as a real one would make it). It logs every query it receives, one JSON line
 * each, so a test can tell which names reached the upstream and which were answered on the way.
 * Garbage input is logged as such and never stops it.
 */
import type { DaemonHandle, Ns } from '../helpers/netns-lab';
import { waitFor } from '../helpers/wait';

const UPSTREAM_PY = String.raw`
import socket, struct, sys, json, threading
zone = {k.lower(): v for k, v in json.loads(sys.argv[1]).items()}
udp_max = int(sys.argv[2])
lock = threading.Lock()
def log(o):
    with lock:
        print(json.dumps(o), flush=True)
def answer(q, tcp):
    if len(q) < 12: raise ValueError('short')
    p, labels = 12, []
    while q[p] != 0:
        n = q[p]
        if n & 0xc0: raise ValueError('pointer')
        labels.append(q[p + 1:p + 1 + n].decode('ascii').lower()); p += 1 + n
    qtype, qclass = struct.unpack('!HH', q[p + 1:p + 5]); qend = p + 5
    name = '.'.join(labels)
    log({'name': name, 'qtype': qtype, 'tcp': tcp})
    ips = zone.get(name)
    rcode = 3 if ips is None else 0
    recs = ips if (ips is not None and qtype == 1) else []
    tc = (not tcp) and len(recs) > udp_max
    if tc: recs = []
    flags = 0x8400 | (q[2] & 1) << 8 | 0x80 | (0x200 if tc else 0) | rcode
    out = q[:2] + struct.pack('!HHHHH', flags, 1, len(recs), 0, 0) + q[12:qend]
    for ip in recs:
        out += struct.pack('!HHHIH', 0xc00c, 1, 1, 60, 4) + socket.inet_aton(ip)
    return out
def serve_udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('192.0.2.254', 53))
    while True:
        m, a = s.recvfrom(4096)
        try: s.sendto(answer(m, False), a)
        except Exception as e: log({'garbage': m[:64].hex(), 'error': str(e)})
def serve_tcp():
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(('192.0.2.254', 53)); t.listen(16)
    while True:
        c, _ = t.accept(); c.settimeout(5)
        try:
            n = struct.unpack('!H', c.recv(2))[0]; m = b''
            while len(m) < n: m += c.recv(n - len(m))
            r = answer(m, True); c.sendall(struct.pack('!H', len(r)) + r)
        except Exception as e: log({'garbage': 'tcp', 'error': str(e)})
        finally: c.close()
threading.Thread(target=serve_tcp, daemon=True).start()
log({'ready': True})
serve_udp()
`;

export interface UpstreamQuery {
  name: string;
  qtype: number;
  tcp: boolean;
}

export interface FakeUpstream {
  readonly handle: DaemonHandle;
  /** Every query received so far, in order. */
  queries(): UpstreamQuery[];
  /** How many datagrams it could not parse. */
  garbage(): number;
}

/** Start it in `lan` (192.0.2.254 must be there) and wait until it listens. */
export async function startFakeUpstream(lan: Ns, zone: Record<string, string[]>, udpMax = 8): Promise<FakeUpstream> {
  const handle = lan.spawnDaemon('python3', ['-u', '-c', UPSTREAM_PY, JSON.stringify(zone), String(udpMax)]);
  const lines = (): Array<Record<string, unknown>> =>
    handle
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  await waitFor(async () => lines().some((l) => l.ready === true), { timeoutMs: 15_000, what: `the fake upstream DNS in ${lan.ns} listening (${handle.logs().slice(-300)})` });
  return {
    handle,
    queries: () => lines().filter((l) => typeof l.name === 'string') as unknown as UpstreamQuery[],
    garbage: () => lines().filter((l) => 'garbage' in l).length,
  };
}
