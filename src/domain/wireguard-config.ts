/**
 * flannel's `wireguard` backend options (flannel pkg/backend/wireguard, wgBackendConfig), read as
 * flanneld's json.Unmarshal fills them, with flanneld's defaults: ListenPort 51820, ListenPortV6
 * 51821, Mode "separate", PersistentKeepaliveInterval 0 (seconds; off), PSK "" (none), MTU 0 (derive
 * from the underlay). flanneld refuses a Mode other than separate/auto/ipv4/ipv6 ("No valid Mode
 * configured") and a PSK that is not a base64 32-byte key; so do we, with the same meaning.
 * Keys are WireGuard's: 32 raw bytes in standard base64 (44 characters, one "=").
 */
import { invalid } from '../errors';
import { intField, JsonObject, stringField } from './json-fields';

export const DEFAULT_WG_LISTEN_PORT = 51820;
export const DEFAULT_WG_LISTEN_PORT_V6 = 51821;
export const WG_MODES = ['separate', 'auto', 'ipv4', 'ipv6'] as const;
export type WireguardMode = (typeof WG_MODES)[number];
export const WG_DEVICE_NAME = 'flannel-wg';

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
