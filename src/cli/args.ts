/**
 * Command line of the `overlay-flannel` binary. Without a command it runs the daemon; the other
 * commands are for operators, so nobody has to hand-write flannel JSON into etcdctl.
 * etcd is reached with the same environment variables as the daemon (ETCD_ENDPOINTS, …).
 */
import { parseArgs } from 'node:util';
import { invalid } from '../errors';
import { NetworkConfigInput } from '../domain/network-config';

export const USAGE = `Usage:
  overlay-flannel [daemon]              run the plugin daemon (configured by environment variables)
  overlay-flannel config set --network CIDR [--backend vxlan|host-gw|alloc|wireguard] [--vni N] [--port N]
                             [--subnet-len N] [--subnet-min IP] [--subnet-max IP]
                             [--direct-routing] [--mtu N] [--name NAME | --prefix P]
                             [--ipv6-network CIDR [--ipv6-subnet-len N] [--ipv6-subnet-min IP]
                              [--ipv6-subnet-max IP] [--ipv6-only]]
                                        validate and write the overlay's flannel config to etcd
                                        (--port: vxlan's Port, wireguard's ListenPort)
                                        (--ipv6-network: EnableIPv6 and IPv6Network, dual-stack;
                                        --ipv6-only: EnableIPv4 false, without --network)
  overlay-flannel config show [--name NAME | --prefix P]  print the config as stored, and what it means
  overlay-flannel status [--name NAME | --prefix P] [--json]  list every host's lease
  overlay-flannel status --containers [--name NAME | --prefix P] [--json]
                                        every container of every host (name records), with its host's lease
  overlay-flannel status --paths [--name NAME | --prefix P] [--json]
                                        probe every vxlan peer through the overlay now: RTT, loss (exit 3: one unreachable)
  overlay-flannel names [--network NET] [--json]  list the cross-host name records (every host's)
  overlay-flannel help

etcd: ETCD_ENDPOINTS (default http://127.0.0.1:2379), ETCD_PREFIX (default /coreos.com/network),
ETCD_CAFILE/ETCD_CERTFILE/ETCD_KEYFILE, ETCD_USERNAME/ETCD_PASSWORD. --prefix overrides ETCD_PREFIX.
--name NAME selects the named overlay that \`--ipam-opt network=NAME\` uses (stored under <ETCD_PREFIX>-NAME);
each overlay has its own Network, VNI, leases and devices, and traffic between overlays is dropped.`;

export type Command =
  | { cmd: 'daemon' }
  | { cmd: 'help' }
  | { cmd: 'config-set'; prefix?: string; name?: string; input: NetworkConfigInput }
  | { cmd: 'config-show'; prefix?: string; name?: string }
  | { cmd: 'status'; prefix?: string; name?: string; json: boolean; containers?: true; paths?: true }
  | { cmd: 'names'; network?: string; json: boolean };

/** `--name` and `--prefix` both choose the overlay: at most one of them. */
function target(values: { name?: string; prefix?: string }): { name?: string; prefix?: string } {
  if (values.name !== undefined && values.prefix !== undefined) throw invalid('--name and --prefix both choose the overlay: give one of them');
  if (values.name !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(values.name)) {
    throw invalid(`--name: "${values.name}" is not a valid overlay name (letters, digits, "_", ".", "-"; up to 63 characters)`);
  }
  return { ...(values.name ? { name: values.name } : {}), ...(values.prefix ? { prefix: values.prefix } : {}) };
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw invalid(`--${name}: "${v}" is not a whole number`);
  return Number(v);
}

export function parseCommand(argv: string[]): Command {
  const [first, second] = argv;
  if (first === undefined || first === 'daemon') return { cmd: 'daemon' };
  if (first === 'help' || first === '--help' || first === '-h') return { cmd: 'help' };
  if (first === 'config' && second === 'set') {
    const { values } = parseArgs({
      args: argv.slice(2),
      strict: true,
      options: {
        network: { type: 'string' },
        backend: { type: 'string' },
        vni: { type: 'string' },
        port: { type: 'string' },
        'subnet-len': { type: 'string' },
        'subnet-min': { type: 'string' },
        'subnet-max': { type: 'string' },
        'direct-routing': { type: 'boolean' },
        mtu: { type: 'string' },
        'ipv6-network': { type: 'string' },
        'ipv6-subnet-len': { type: 'string' },
        'ipv6-subnet-min': { type: 'string' },
        'ipv6-subnet-max': { type: 'string' },
        'ipv6-only': { type: 'boolean' },
        prefix: { type: 'string' },
        name: { type: 'string' },
      },
    });
    const v6only = values['ipv6-only'] === true;
    if (v6only && !values['ipv6-network']) throw invalid('config set: --ipv6-only needs --ipv6-network, e.g. --ipv6-network fd00:10::/48');
    if (v6only && values.network) throw invalid('config set: --ipv6-only has no IPv4 Network: drop --network (or drop --ipv6-only for dual-stack)');
    if (!v6only && !values.network) throw invalid('config set: --network is required, e.g. --network 10.1.0.0/16 (or --ipv6-only --ipv6-network fd00:10::/48)');
    const backend = values.backend ?? 'vxlan';
    if (backend !== 'vxlan' && backend !== 'host-gw' && backend !== 'alloc' && backend !== 'wireguard') throw invalid(`--backend: "${backend}" is not supported; use vxlan, host-gw, alloc or wireguard`);
    const input: NetworkConfigInput = {
      ...(values.network ? { network: values.network } : {}),
      backend,
      ...(values.vni !== undefined ? { vni: int('vni', values.vni) } : {}),
      ...(values.port !== undefined ? { port: int('port', values.port) } : {}),
      ...(values['subnet-len'] !== undefined ? { subnetLen: int('subnet-len', values['subnet-len']) } : {}),
      ...(values['subnet-min'] ? { subnetMin: values['subnet-min'] } : {}),
      ...(values['subnet-max'] ? { subnetMax: values['subnet-max'] } : {}),
      ...(values['direct-routing'] ? { directRouting: true } : {}),
      ...(values.mtu !== undefined ? { mtu: int('mtu', values.mtu) } : {}),
      ...(v6only ? { ipv4: false as const } : {}),
      ...(values['ipv6-network'] ? { ipv6Network: values['ipv6-network'] } : {}),
      ...(values['ipv6-subnet-len'] !== undefined ? { ipv6SubnetLen: int('ipv6-subnet-len', values['ipv6-subnet-len']) } : {}),
      ...(values['ipv6-subnet-min'] ? { ipv6SubnetMin: values['ipv6-subnet-min'] } : {}),
      ...(values['ipv6-subnet-max'] ? { ipv6SubnetMax: values['ipv6-subnet-max'] } : {}),
    };
    return { cmd: 'config-set', input, ...target(values) };
  }
  if (first === 'config' && second === 'show') {
    const { values } = parseArgs({ args: argv.slice(2), strict: true, options: { prefix: { type: 'string' }, name: { type: 'string' } } });
    return { cmd: 'config-show', ...target(values) };
  }
  if (first === 'status') {
    const { values } = parseArgs({
      args: argv.slice(1),
      strict: true,
      options: { prefix: { type: 'string' }, name: { type: 'string' }, json: { type: 'boolean' }, containers: { type: 'boolean' }, paths: { type: 'boolean' } },
    });
    if (values.containers && values.paths) throw invalid('status: --containers and --paths are two views: give one of them');
    return { cmd: 'status', json: values.json ?? false, ...target(values), ...(values.containers ? { containers: true as const } : {}), ...(values.paths ? { paths: true as const } : {}) };
  }
  if (first === 'names') {
    const { values } = parseArgs({ args: argv.slice(1), strict: true, options: { network: { type: 'string' }, json: { type: 'boolean' } } });
    if (values.network !== undefined && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(values.network)) {
      throw invalid(`--network: "${values.network}" is not a Docker network name (letters, digits, "_", ".", "-")`);
    }
    return { cmd: 'names', json: values.json ?? false, ...(values.network !== undefined ? { network: values.network } : {}) };
  }
  throw invalid(`unknown command "${argv.join(' ')}"\n${USAGE}`);
}
