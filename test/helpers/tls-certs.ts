/**
 * tls-certs.ts — throwaway certificates for the etcd TLS tests, made with openssl in a directory
 * of the test's own: a CA, certificates it signs (a server certificate for an etcd address, client
 * certificates), and as many unrelated CAs as a test needs to make certificates etcd must refuse.
 * {@link makeEtcdPki} makes the set both TLS test files use, {@link startTlsEtcd} an etcd on it.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EtcdServer, startEtcd } from './etcd-server';
import { run } from './run';

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir, timeoutMs: 30_000 });
}

/** A CA `<name>-ca.{crt,key}` in dir. */
export async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}-ca`, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`]);
}

/** A certificate `<name>.{crt,key}` signed by CA `<ca>`; `san` e.g. "IP:192.0.2.254". */
export async function makeCert(dir: string, ca: string, name: string, usage: 'serverAuth' | 'clientAuth', san?: string): Promise<void> {
  await openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  const ext = `${name}.ext`;
  await writeFile(join(dir, ext), `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=${usage}\n${san ? `subjectAltName=${san}\n` : ''}`);
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}-ca.crt`, '-CAkey', `${ca}-ca.key`, '-CAcreateserial', '-days', '2', '-extfile', ext, '-out', `${name}.crt`]);
}

/**
 * In `dir`: CAs `good` and `rogue`; `server` (signed by good, for `serverIp`), `client` (good,
 * accepted) and `intruder` (rogue: a client certificate etcd must refuse).
 */
export async function makeEtcdPki(dir: string, serverIp: string): Promise<void> {
  await makeCa(dir, 'good');
  await makeCa(dir, 'rogue');
  await makeCert(dir, 'good', 'server', 'serverAuth', `IP:${serverIp}`);
  await makeCert(dir, 'good', 'client', 'clientAuth');
  await makeCert(dir, 'rogue', 'intruder', 'clientAuth');
}

/** A real etcd at `host` (in `netns`) serving TLS with `server`, requiring client certificates of CA good. */
export function startTlsEtcd(dir: string, opts: { netns: string; host: string }): Promise<EtcdServer> {
  const f = (n: string) => join(dir, n);
  return startEtcd({
    ...opts,
    clientTls: { caFile: f('good-ca.crt'), certFile: f('client.crt'), keyFile: f('client.key') },
    extraArgs: ['--client-cert-auth', '--trusted-ca-file', f('good-ca.crt'), '--cert-file', f('server.crt'), '--key-file', f('server.key')],
  });
}
