// Which Docker DNS configurations cross-host names can work with (src/domain/dns-upstream.ts), as a table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { upstreamProblem, type DnsConfigFiles } from '../../src/domain/dns-upstream';

test('upstreamProblem: only an all-loopback upstream is a problem; unreadable files are no verdict', () => {
  const f = (o: Partial<DnsConfigFiles>): DnsConfigFiles => ({ daemonJson: null, resolvConf: null, systemdResolvConf: null, ...o });
  const cases: [string, DnsConfigFiles, RegExp | null][] = [
    ['a LAN resolver in resolv.conf', f({ resolvConf: 'search lan\nnameserver 192.0.2.53\n' }), null],
    ['loopback only in resolv.conf', f({ resolvConf: 'nameserver 127.0.0.1\n' }), /127\.0\.0\.1, from \/etc\/resolv\.conf.*"dns"/],
    ['loopback and a real one', f({ resolvConf: 'nameserver 127.0.0.1\nnameserver 192.0.2.53\n' }), null],
    ['systemd stub: its upstream file decides (real)', f({ resolvConf: 'nameserver 127.0.0.53\n', systemdResolvConf: 'nameserver 198.51.100.1\n' }), null],
    ['systemd stub: its upstream file decides (loopback)', f({ resolvConf: 'nameserver 127.0.0.53\n', systemdResolvConf: 'nameserver ::1\n' }), /::1, from \/run\/systemd/],
    ['systemd stub, no upstream file', f({ resolvConf: 'nameserver 127.0.0.53\n' }), /127\.0\.0\.53/],
    ['daemon.json dns wins over resolv.conf', f({ daemonJson: '{"dns":["192.0.2.53"]}', resolvConf: 'nameserver 127.0.0.1\n' }), null],
    ['daemon.json dns on loopback', f({ daemonJson: '{"dns":["127.0.0.1"]}', resolvConf: 'nameserver 192.0.2.53\n' }), /daemon\.json "dns"/],
    ['daemon.json without dns: resolv.conf', f({ daemonJson: '{"log-level":"info"}', resolvConf: 'nameserver 127.0.0.2\n' }), /127\.0\.0\.2/],
    ['broken daemon.json: no verdict', f({ daemonJson: '{', resolvConf: 'nameserver 127.0.0.1\n' }), null],
    ['no resolv.conf: no verdict', f({}), null],
    ['no nameservers (Docker uses its defaults)', f({ resolvConf: '# empty\n' }), null],
  ];
  for (const [what, files, want] of cases) {
    const got = upstreamProblem(files);
    if (want === null) assert.equal(got, null, what);
    else assert.match(got ?? '', want, what);
  }
});
