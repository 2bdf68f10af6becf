/**
 * flannel's `wireguard` backend options (flannel pkg/backend/wireguard, wgBackendConfig), read as
 * flanneld's json.Unmarshal fills them, with flanneld's defaults: ListenPort 51820, ListenPortV6
 * 51821, Mode "separate", PersistentKeepaliveInterval 0 (seconds; off), PSK "" (none), MTU 0 (derive
 * from the underlay). flanneld refuses a Mode other than separate/auto/ipv4/ipv6 ("No valid Mode
 * configured") and a PSK that is not a base64 32-byte key; so do we, with the same meaning.
 * Keys are WireGuard's: 32 raw bytes in standard base64 (44 characters, one "=").
 * Several wireguard overlays on one host (the default and named ones): each has its own device
 * (wireguardDeviceName) and its own ListenPort (a dual-stack one also its v6 device on ListenPortV6);
 * WireguardClaims refuses an overlay that would take a device name or a port another device on
 * this host already has, of either family (docs/wireguard.md).
 */
import { createHash } from 'node:crypto';
import { invalid } from '../errors';
import { intField, JsonObject, stringField } from './json-fields';

export const DEFAULT_WG_LISTEN_PORT = 51820;
export const DEFAULT_WG_LISTEN_PORT_V6 = 51821;
export const WG_MODES = ['separate', 'auto', 'ipv4', 'ipv6'] as const;
export type WireguardMode = (typeof WG_MODES)[number];
export const WG_DEVICE_NAME = 'flannel-wg';
/** Prefix of a named overlay's WireGuard device: `fwg-<name>`. */
export const WG_NAMED_PREFIX = 'fwg-';

/**
 * The WireGuard device of an overlay: flanneld's `flannel-wg` for the default one, `fwg-<name>` for
 * a named one. IFNAMSIZ leaves 11 characters for the name; a longer one becomes its first 6, "-"
 * and 4 hex digits of the SHA-256 of the whole name (`fwg-produc-3f2a`), so the name stays
 * recognisable and two long names with the same start differ.
 */
export function wireguardDeviceName(overlay: string): string {
  if (overlay === 'default') return WG_DEVICE_NAME;
  if (overlay.length <= 11) return `${WG_NAMED_PREFIX}${overlay}`;
  return `${WG_NAMED_PREFIX}${overlay.slice(0, 6)}-${createHash('sha256').update(overlay).digest('hex').slice(0, 4)}`;
}

export const WG_V6_DEVICE_NAME = 'flannel-wg-v6';

/** The v6 device of a dual-stack wireguard overlay (Mode "separate"), from its v4 device: flanneld's
 *  `flannel-wg-v6` for `flannel-wg`, `fw6-<…>` for a named overlay's `fwg-<…>` (same length, one to one). */
export function wireguardV6DeviceName(v4Device: string): string {
  if (v4Device === WG_DEVICE_NAME) return WG_V6_DEVICE_NAME;
  return v4Device.startsWith(WG_NAMED_PREFIX) ? `fw6-${v4Device.slice(WG_NAMED_PREFIX.length)}` : `${v4Device.slice(0, 12)}-v6`;
}

/** One device a wireguard overlay runs on this host: its name, its UDP port and the config field
 *  that port comes from. */
export interface WireguardDeviceClaim {
  readonly device: string;
  readonly port: number;
  readonly field: 'ListenPort' | 'ListenPortV6';
}

/** The devices an overlay's wireguard backend runs: `flannel-wg`/`fwg-<name>` on ListenPort, and
 *  with a v6 network (dual-stack, Mode "separate"; OverlayDataplane's condition) also
 *  `flannel-wg-v6`/`fw6-<name>` on ListenPortV6. */
export function wireguardDeviceClaims(overlay: string, backend: WireguardBackend, dualStack: boolean): WireguardDeviceClaim[] {
  const v4 = wireguardDeviceName(overlay);
  const claims: WireguardDeviceClaim[] = [{ device: v4, port: backend.listenPort, field: 'ListenPort' }];
  if (dualStack) claims.push({ device: wireguardV6DeviceName(v4), port: backend.listenPortV6, field: 'ListenPortV6' });
  return claims;
}

function portFix(field: WireguardDeviceClaim['field']): string {
  return field === 'ListenPort'
    ? 'set "ListenPort" in this overlay\'s Backend (overlay-flannel config set … --backend wireguard --port N)'
    : 'set "ListenPortV6" in this overlay\'s Backend (write the overlay\'s config with etcdctl put, "ListenPortV6":N; the CLI\'s --port sets ListenPort only)';
}

/**
 * Which wireguard overlay of this host holds which devices and listen ports. Every WireGuard device
 * binds its port for both families (wireguard-go's Bind and the kernel's wg_socket_init open
 * 0.0.0.0:P and [::]:P; measured with wireguard-go: a second device on P fails "Address already in
 * use"), so no two devices of this host may share a port, whatever their families: one overlay's
 * ListenPort against another's ListenPortV6 clashes as ListenPort against ListenPort does, and so
 * do a dual-stack overlay's own two. flanneld's model gives every host of an overlay the same ports
 * (its config's), so a second overlay asking for a port already held is refused with the reason
 * (its config must name another port), never left to fail in the device.
 */
export class WireguardClaims {
  private readonly held = new Map<string, readonly WireguardDeviceClaim[]>();

  /** Claim `wants` (wireguardDeviceClaims) for `overlay`: null when done (or already its own), else why not. */
  claim(overlay: string, wants: readonly WireguardDeviceClaim[]): string | null {
    for (const [i, w] of wants.entries()) {
      const twin = wants.slice(0, i).find((o) => o.port === w.port);
      if (twin) {
        return `"${w.field}" ${w.port} is the same port as its "${twin.field}": ${twin.device} and ${w.device} each listen on their port for IPv4 and IPv6 alike, ` +
          `so they need two ports: ${portFix(w.field)}`;
      }
    }
    for (const [other, holds] of this.held) {
      if (other === overlay) continue;
      for (const w of wants) {
        for (const h of holds) {
          if (h.port === w.port) {
            const same = w.field === 'ListenPort' && h.field === 'ListenPort';
            return `${w.field} ${w.port} is already the port of the wireguard overlay "${other}" (${h.device}${same ? '' : `, its "${h.field}"`}) on this host; ` +
              (same ? 'each wireguard overlay needs its own' : 'each WireGuard device needs its own (a device listens on its port for IPv4 and IPv6 alike)') +
              `: ${portFix(w.field)}`;
          }
          if (h.device === w.device) return `its WireGuard device name ${w.device} is already that of the wireguard overlay "${other}" on this host; rename one of the two overlays`;
        }
      }
    }
    this.held.set(overlay, [...wants]);
    return null;
  }

  release(overlay: string): void {
    this.held.delete(overlay);
  }

  /** overlay → its devices and ports, for views and tests. */
  list(): Map<string, readonly WireguardDeviceClaim[]> {
    return new Map(this.held);
  }
}

export interface WireguardBackend {
  readonly type: 'wireguard';
  readonly listenPort: number;
  readonly listenPortV6: number;
  readonly mode: WireguardMode;
  readonly persistentKeepaliveInterval: number; // seconds, 0 = off
  readonly psk?: string; // base64 32-byte pre-shared key
  readonly mtu?: number; // 0/absent = the underlay's MTU minus WireGuard's overhead
}

const KEY_RE = /^[A-Za-z0-9+/]{43}=$/;

/** True when `text` is a WireGuard key as wg prints it: base64 of exactly 32 bytes. */
export function isWireguardKey(text: string): boolean {
  return KEY_RE.test(text) && Buffer.from(text, 'base64').length === 32;
}

/** Throws INVALID naming `what` unless `text` is a base64 32-byte key. */
export function checkWireguardKey(text: string, what: string): string {
  if (!isWireguardKey(text)) throw invalid(`${what}: not a WireGuard key (base64 of 32 bytes, as \`wg genkey\`/\`wg genpsk\` print), got ${JSON.stringify(text.slice(0, 60))}`);
  return text;
}

/** The Backend object of a config whose Type is wireguard (case of keys as Go: insensitive). */
export function parseWireguardBackend(raw: JsonObject, where: string): WireguardBackend {
  const listenPort = intField(raw, 'ListenPort', where, 0, 65535) || DEFAULT_WG_LISTEN_PORT;
  const listenPortV6 = intField(raw, 'ListenPortV6', where, 0, 65535) || DEFAULT_WG_LISTEN_PORT_V6;
  const modeText = stringField(raw, 'Mode', where) ?? '';
  const mode = (modeText === '' ? 'separate' : modeText) as WireguardMode;
  if (!WG_MODES.includes(mode)) {
    throw invalid(`${where}: No valid Mode configured: "Mode" ${JSON.stringify(modeText)} is not one of ${WG_MODES.join(', ')} (flanneld refuses it too)`);
  }
  const persistentKeepaliveInterval = intField(raw, 'PersistentKeepaliveInterval', where, 0, 65535) ?? 0;
  const pskText = stringField(raw, 'PSK', where) ?? '';
  const psk = pskText === '' ? undefined : checkWireguardKey(pskText, `${where}: "PSK"`);
  const mtu = intField(raw, 'MTU', where, 0, 65535);
  if (mtu !== undefined && mtu !== 0 && mtu < 576) throw invalid(`${where}: "MTU" ${mtu} is too small for IPv4 (at least 576)`);
  return {
    type: 'wireguard',
    listenPort,
    listenPortV6,
    mode,
    persistentKeepaliveInterval,
    ...(psk ? { psk } : {}),
    ...(mtu ? { mtu } : {}),
  };
}
