/**
 * tls-certs.ts — throwaway certificates for the etcd TLS tests, made with openssl in a directory
 * of the test's own: a CA, certificates it signs (a server certificate for an etcd address, client
 * certificates), and as many unrelated CAs as a test needs to make certificates etcd must refuse.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
 * etcd flags that serve clients over TLS and require a client certificate signed by `ca`:
 * `<dir>/<ca>-ca.crt` trusted, `<dir>/server.{crt,key}` served.
 */
export function etcdTlsArgs(dir: string, ca: string): string[] {
  const f = (n: string) => join(dir, n);
  return ['--client-cert-auth', '--trusted-ca-file', f(`${ca}-ca.crt`), '--cert-file', f('server.crt'), '--key-file', f('server.key')];
}
