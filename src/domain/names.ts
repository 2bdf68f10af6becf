/**
 * Kernel object names, deterministic and ≤ 15 characters (IFNAMSIZ), derived from ids so that a
 * restarted daemon finds what it made before (and leftovers can be told from foreign objects).
 */
export const IFNAME_MAX = 15;

/** flannel's device name, so flanneld tooling and docs apply; shortened only past IFNAMSIZ. */
export function vxlanDeviceName(vni: number): string {
  const name = `flannel.${vni}`;
  return name.length <= IFNAME_MAX ? name : `fl.${vni}`;
}

const hex = (id: string, n: number) => id.replace(/[^0-9a-zA-Z]/g, '').slice(0, n).toLowerCase();

/** How the bridge of every Docker network is named (then the network id's first 11). */
export const BRIDGE_PREFIX = 'ofb-';

/** The bridge of one Docker network: "ofb-" + the first 11 characters of the network id. */
export function bridgeName(networkId: string): string {
  return `${BRIDGE_PREFIX}${hex(networkId, 11)}`;
}

/** How the host end of every endpoint's veth pair is named (then the endpoint id's first 12). */
export const HOST_VETH_PREFIX = 'ofh';

/** Host and container ends of an endpoint's veth pair. */
export function vethNames(endpointId: string): { host: string; container: string } {
  const id = hex(endpointId, 12);
  return { host: `${HOST_VETH_PREFIX}${id}`, container: `ofc${id}` };
}
