/**
 * A real Chromium (Debian's /usr/bin/chromium) driven by playwright-core, running inside a lab
 * host's network namespace so it reaches that host's status server. Playwright talks to the
 * browser over --remote-debugging-pipe (fds 3 and 4), which survive an `exec nsenter --net=…`:
 * the executable we hand it is a two-line wrapper script that does exactly that. No browser is
 * downloaded; the profile is Playwright's temporary one. close() ends the browser and removes
 * the wrapper's folder.
 */
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import type { Ns } from '../helpers/netns-lab';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

export interface NsBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/** Headless Chromium in this process's own network namespace (a test under `unshare --net`). */
export async function launchBrowser(): Promise<NsBrowser> {
  if (!CHROMIUM) throw new Error('chromium is not installed (apt-get install chromium; .ci/run installs it)');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'], timeout: 60_000 });
  return { browser, close: () => browser.close().catch(() => undefined) };
}

/** Launch headless Chromium inside `ns`; `tag` makes the wrapper's folder unique to the run. */
export async function launchBrowserIn(ns: Ns, tag: string): Promise<NsBrowser> {
  if (!CHROMIUM) throw new Error('chromium is not installed (apt-get install chromium; .ci/run installs it)');
  const dir = `/tmp/of-status-browser-${tag}`;
  mkdirSync(dir, { recursive: true });
  const wrapper = join(dir, 'chromium-in-netns');
  writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=${ns.nsPath} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  try {
    const browser = await chromium.launch({ executablePath: wrapper, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'], timeout: 60_000 });
    return {
      browser,
      async close() {
        await browser.close().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
