/** Adapts the etcd store of one flannel prefix to what an overlay agent needs. */
import type { OverlayStore } from '../store';
import type { OverlayStorePort } from '../reconcile/overlay-agent';

export function overlayPort(ov: OverlayStore): OverlayStorePort {
  return {
    prefix: ov.keys.prefix,
    watchConfig: (onChange) => ov.config.watch(onChange),
    createKeeper: (opts) => ov.keeper(opts),
    watchLeases: (onEvent) => {
      const w = ov.leases();
      w.on('event', onEvent);
      void w.start();
      return w;
    },
  };
}
