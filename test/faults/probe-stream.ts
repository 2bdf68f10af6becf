/**
 * probe-stream.ts — continuous traffic for fault scenarios: one ICMP echo every 20 ms from a
 * container to an address, counting lost probes and the longest time without an answer.
 *
 * Design note: the prober is the host's iputils `ping -D -n -i 0.02` run inside the container's
 * network namespace (`nsenter --net=/proc/<pid>/ns/net`), so it is this process's child: it cannot
 * be lost with the container's exec session when dockerd restarts, and stopping it is a SIGINT that
 * makes ping print its summary. `-w` bounds its life even if the test never stops it. Each answer
 * line carries the receive time (`-D`), so the longest gap is measured, not inferred from sequence
 * numbers: the largest interval between consecutive answers, counting from the first answer and
 * up to the moment stop() was called.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { DockerHost } from '../helpers/docker-lab';
import { waitFor } from '../helpers/wait';

export interface ProbeFigures {
  /** Echo requests sent and answers received (ping's own summary). */
  sent: number;
  received: number;
  lost: number;
  /** Longest time without an answer, in ms (also until stop()). */
  longestGapMs: number;
  /** Wall time of the stream, first answer to stop(), in ms. */
  durationMs: number;
}

const REPLY = /^\[(\d+\.\d+)\] \d+ bytes from [\d.]+: icmp_seq=(\d+)/;

export class ProbeStream {
  private readonly child: ChildProcess;
  private out = '';
  private readonly replies: number[] = []; // receive times, ms since the epoch
  private readonly closed: Promise<void>;

  private constructor(
    readonly label: string,
    pid: number,
    target: string,
    maxSeconds: number,
    intervalS: number,
  ) {
    this.child = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, 'ping', '-D', '-n', '-i', String(intervalS), '-W', '1', '-w', String(maxSeconds), target], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    this.child.stdout!.on('data', (b: Buffer) => {
      const text = partial + b.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        this.out += `${l}\n`;
        const m = REPLY.exec(l);
        if (m && !l.includes('DUP!')) this.replies.push(Math.round(Number(m[1]) * 1000));
      }
      if (this.out.length > 64 * 1024) this.out = this.out.slice(-32 * 1024);
    });
    this.child.stderr!.on('data', (b: Buffer) => (this.out += b.toString('utf8')));
    this.closed = new Promise((resolve) => this.child.once('close', () => resolve()));
  }

  /**
   * Start pinging `target` from container `container` on `d` every `intervalMs` (default 20 ms) and
   * wait for the first answer (deadline 20 s). The stream ends by itself after `maxSeconds`.
   */
  static async start(d: DockerHost, container: string, target: string, opts: { intervalMs?: number; maxSeconds?: number } = {}): Promise<ProbeStream> {
    const pid = Number((await d.dockerOk(['inspect', '-f', '{{.State.Pid}}', container])).stdout.trim());
    if (!(pid > 1)) throw new Error(`container ${container} has no pid (not running?)`);
    const s = new ProbeStream(`${container} → ${target}`, pid, target, opts.maxSeconds ?? 300, (opts.intervalMs ?? 20) / 1000);
    try {
      await waitFor(async () => s.replies.length > 0, { timeoutMs: 20_000, intervalMs: 50, what: `first answer of ${s.label}` });
    } catch (e) {
      await s.stop().catch(() => undefined);
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n--- ping ---\n${s.out.slice(-1500)}`);
    }
    return s;
  }

  /** Answers so far. */
  get answers(): number {
    return this.replies.length;
  }

  /** Wait until `n` more answers came (proof the path works now). */
  async moreAnswers(n: number, timeoutMs = 20_000): Promise<void> {
    const want = this.replies.length + n;
    await waitFor(async () => this.replies.length >= want, { timeoutMs, intervalMs: 50, what: `${n} more answers of ${this.label}` });
  }

  /** Stop pinging and return the figures. */
  async stop(): Promise<ProbeFigures> {
    const stoppedAt = Date.now();
    this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.closed;
    clearTimeout(timer);
    const summary = /(\d+) packets transmitted, (\d+) received/.exec(this.out);
    const sent = summary ? Number(summary[1]) : 0;
    const received = summary ? Number(summary[2]) : this.replies.length;
    let longest = 0;
    for (let i = 1; i < this.replies.length; i++) longest = Math.max(longest, this.replies[i]! - this.replies[i - 1]!);
    const last = this.replies[this.replies.length - 1];
    if (last !== undefined) longest = Math.max(longest, stoppedAt - last);
    const first = this.replies[0] ?? stoppedAt;
    return { sent, received, lost: Math.max(0, sent - received), longestGapMs: longest, durationMs: stoppedAt - first };
  }

  /** The tail of ping's output (for failure messages). */
  tail(chars = 1500): string {
    return this.out.slice(-chars);
  }
}
