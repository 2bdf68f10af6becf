#!/usr/bin/env node
/**
 * Entry point of `overlay-flannel`: the daemon by default, or an operator command.
 * Exit codes: 0 ok, 1 failure, 2 bad settings or usage.
 */
import { loadSettings, SettingsError } from './config/settings';
import { parseCommand, USAGE, Command } from './cli/args';
import { runCommand, withCommandDeadline } from './cli/commands';
import { createLogger } from './util/logger';
import { errorText, rawErrorText } from './errors';

async function main(argv: string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommand(argv);
  } catch (e) {
    process.stderr.write(`overlay-flannel: ${errorText(e)}\n${/Usage:/.test(errorText(e)) ? '' : USAGE + '\n'}`);
    return 2;
  }
  if (command.cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  let settings;
  try {
    settings = loadSettings(process.env);
  } catch (e) {
    if (e instanceof SettingsError) {
      process.stderr.write(`overlay-flannel: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (command.cmd !== 'daemon') {
    // One line per failure: no DEP0123 ("TLS ServerName to an IP address") on an https://IP endpoint.
    process.noDeprecation = true;
    const log = createLogger(settings.logLevel === 'info' ? 'warn' : settings.logLevel);
    try {
      return await withCommandDeadline(runCommand(command, settings, log, (line) => process.stdout.write(line + '\n')), settings);
    } catch (e) {
      log.debug({ raw: rawErrorText(e) }, 'the command failed: the error as etcd3 gave it');
      process.stderr.write(`overlay-flannel: ${errorText(e)}\n`);
      return 1;
    }
  }
  const log = createLogger(settings.logLevel);
  process.on('unhandledRejection', (e) => log.error({ err: errorText(e) }, 'unhandled rejection (a bug; the daemon keeps running)'));
  process.on('uncaughtException', (e) => {
    log.fatal({ err: errorText(e), stack: e.stack }, 'uncaught exception; exiting');
    process.exit(1);
  });
  // Loaded here, not at the top: an operator command starts without the daemon's modules (~0.5 s).
  const { startDaemon } = await import('./daemon/daemon');
  const { locateDockerSocket } = await import('./docker/socket-locator');
  // The Docker socket first: the daemon's users of the Docker API (plain driver names included) take the path found.
  const dockerSocket = await locateDockerSocket(settings, log);
  const daemon = await startDaemon(Object.freeze({ ...settings, dockerSocket }), log);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, 'stopping');
      void daemon.stop().finally(resolve);
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`overlay-flannel: ${errorText(e)}\n`);
    process.exit(1);
  },
);
