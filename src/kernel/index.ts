/** The kernel's one door (see README.md here): the Kernel interface, the netlink adapter, errors. */
export * from './types';
export { createNetlinkKernel, NetlinkKernel, type NetlinkKernelOptions } from './netlink-kernel';
export { KernelError, errnoOf, isErrno } from './errno';
export { checkIfName } from './codec';
export { checkNameSpec } from './nft-names';
export { WG_INSTALL_HINT } from './wireguard-userspace';
export type { WireguardOptions } from './kernel-wireguard';
