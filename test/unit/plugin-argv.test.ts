import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isPluginArgv } from '../lab/docker-plugin-lab';

// The labs find the plugin's daemon by its argv; the managed plugin's entrypoint puts node flags
// before the script (plugin/config.json), which the old argv[1] check missed (bench:names failed).
test('the plugin daemon is found by its argv, with or without node flags', () => {
  const entry = (JSON.parse(readFileSync(join(__dirname, '../../plugin/config.json'), 'utf8')) as { entrypoint: string[] }).entrypoint;
  const table: Array<[string[], boolean]> = [
    [entry, true],
    [['/usr/local/bin/node', '/app/dist/main.js'], true],
    [['/usr/local/bin/node', '--max-semi-space-size=4', '--heap-growing-percent=20', '/app/dist/main.js'], true],
    [['/usr/local/bin/node', '/app/dist/cli.js'], false],
    [['/usr/bin/python3', '/app/dist/main.js'], false],
    [['/usr/local/bin/node', '--import', 'tsx', 'bench/x.ts', '/app/dist/main.js'], false],
    [[], false],
  ];
  for (const [argv, want] of table) assert.equal(isPluginArgv(argv), want, argv.join(' '));
});
