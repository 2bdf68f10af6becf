/**
 * flannel's network config (`<prefix>/config`): read it, write it (`overlay-flannel config set`),
 * and follow it. A config is `ok`, `missing` or `invalid` (with the reason), so callers can wait for
 * an operator to fix it instead of crashing. The watch is a {@link ListWatch} on the one key, so it
 * survives reconnects and compaction; the callback only fires when the state actually changes.
 */
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import { errorText, invalid, OverlayError } from '../errors';
import { parseNetworkConfig } from '../domain/network-config';
import { toStoreError } from './etcd-client';
import type { OverlayKeys } from './keys';
import { ListWatch } from './list-watch';
import type { ConfigState } from './types';

/** Turn the raw value of the config key (or its absence) into a ConfigState. */
export function configStateOf(raw: string | null): ConfigState {
  if (raw === null) return { state: 'missing' };
  try {
    return { state: 'ok', config: parseNetworkConfig(raw), raw };
  } catch (e) {
    return { state: 'invalid', error: errorText(e), raw };
  }
}

function sameState(a: ConfigState | null, b: ConfigState): boolean {
  if (a === null || a.state !== b.state) return false;
  return a.state === 'missing' || (a as { raw: string }).raw === (b as { raw: string }).raw;
}

/** A running config watch. */
export interface ConfigWatch {
  /** The state last reported. */
  current(): ConfigState | null;
  /** Why the config cannot be read right now (etcd refused, timed out, …); null when it can. */
  problem(): OverlayError | null;
  stop(): Promise<void>;
}

export class ConfigStore {
  constructor(
    private readonly client: Etcd3,
    private readonly keys: OverlayKeys,
    private readonly logger: Logger,
    /** Registers running watches (openStore uses it to stop them on close). */
    private readonly track: <T extends ConfigWatch>(w: T) => T = (w) => w,
  ) {}

  /** Read the config now. Throws UNAVAILABLE (etcd down) or INVALID (auth). */
  async read(): Promise<ConfigState> {
    try {
      return configStateOf(await this.client.get(this.keys.config).string());
    } catch (e) {
      throw toStoreError(e, `read network config ${this.keys.config}`);
    }
  }

  /**
   * Write the config text. It is validated first (INVALID/UNSUPPORTED with the reason), so that
   * what we write always loads, here and in flanneld.
   */
  async write(text: string): Promise<void> {
    parseNetworkConfig(text);
    try {
      await this.client.put(this.keys.config).value(text);
    } catch (e) {
      throw toStoreError(e, `write network config ${this.keys.config}`);
    }
  }

  /** Delete the config (tests and `config rm`). */
  async remove(): Promise<void> {
    try {
      await this.client.delete().key(this.keys.config);
    } catch (e) {
      throw toStoreError(e, `delete network config ${this.keys.config}`);
    }
  }

  /**
   * Call `onChange` with the current state (once known), then on every change, until stop().
   * Waits through etcd outages.
   */
  watch(onChange: (state: ConfigState) => void): ConfigWatch {
    let last: ConfigState | null = null;
    const report = (next: ConfigState) => {
      if (sameState(last, next)) return;
      last = next;
      if (next.state === 'invalid') this.logger.warn({ key: this.keys.config, err: next.error }, 'network config is invalid');
      onChange(next);
    };
    const lw = new ListWatch({
      client: this.client,
      target: { key: this.keys.config },
      what: `config ${this.keys.config}`,
      logger: this.logger,
      onSnapshot: (kvs) => report(configStateOf(kvs[0] ? kvs[0].value.toString('utf8') : null)),
      onChanges: (changes) => {
        const c = changes[changes.length - 1];
        report(configStateOf(c.type === 'put' ? c.kv.value.toString('utf8') : null));
      },
    });
    lw.start();
    return this.track({ current: () => last, problem: () => lw.problem, stop: () => lw.stop() });
  }

  /**
   * Wait until the config is present and valid, logging once per distinct problem. Rejects with
   * INVALID("aborted") when `signal` aborts first.
   */
  async waitForValid(signal?: AbortSignal): Promise<Extract<ConfigState, { state: 'ok' }>> {
    let resolve!: (s: Extract<ConfigState, { state: 'ok' }>) => void;
    const got = new Promise<Extract<ConfigState, { state: 'ok' }>>((r) => (resolve = r));
    const w = this.watch((s) => {
      if (s.state === 'ok') resolve(s);
      else if (s.state === 'missing') this.logger.warn({ key: this.keys.config }, 'no network config yet; waiting for one');
    });
    let onAbort = (): void => undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(invalid(`wait for network config ${this.keys.config}: aborted`));
      if (signal?.aborted) onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      return await Promise.race([got, aborted]);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await w.stop();
    }
  }
}
