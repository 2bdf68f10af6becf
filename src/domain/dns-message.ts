/**
 * DNS wire format for cross-host names (docs/names-design.md §6): a strict parser of ONE query
 * datagram and an encoder of the few answers we give (A/AAAA, empty NOERROR, SERVFAIL).
 *
 * The parser sits on the verdict path of every queued UDP/53 packet, so it never throws: it
 * returns a query or a reason, and a reason means "not ours, let the packet pass untouched".
 * It accepts only what a stub resolver or Docker's forwarder sends for a plain lookup: QR=0,
 * OPCODE=0 (QUERY), TC=0, QDCOUNT=1, no answer/authority records, at most one additional record
 * and that one an EDNS0 OPT (version 0) at the root. The question name must be plain labels
 * (1..63 bytes, printable ASCII, no '.' inside a label), ≤ 255 bytes on the wire, with no
 * compression pointer (a question is the first name in the message, nothing to point back to),
 * class IN, and nothing may follow the last record.
 *
 * Answers echo the id and the question bytes as sent (so 0x20 case randomisation survives), set
 * QR, AA, RA and copy RD; answer names are the pointer 0xC00C to the question. NXDOMAIN is never
 * ours to say: names we don't hold pass to the client's upstream. A response must fit the
 * client's UDP size, max(EDNS size, 512). When the addresses don't all fit, the encoder keeps as
 * many as fit; the caller picks with `overflow` whether TC is set as well ('trim-and-set-tc',
 * Docker's own behaviour) or not ('trim', the design note's choice: a TCP retry would bypass us
 * and reach the upstream, which answers NXDOMAIN for overlay names).
 */
import { Address6 } from 'ip-address';
import { parseIPv4 } from './ipv4';

export const DNS_HEADER_BYTES = 12;
export const QTYPE_A = 1;
export const QTYPE_AAAA = 28;
export const QTYPE_OPT = 41;
export const QCLASS_IN = 1;
/** RFC 1035's UDP limit; also the floor for an EDNS size smaller than that. */
export const MIN_UDP_SIZE = 512;
/** Name length on the wire (length bytes + labels + the root byte), RFC 1035 §2.3.4. */
export const MAX_NAME_WIRE_BYTES = 255;
export const MAX_LABEL_BYTES = 63;
/** The UDP size we advertise in the OPT of our answers (the DNS flag day 2020 value). */
export const ANSWER_EDNS_SIZE = 1232;

export const RCODE_NOERROR = 0;
export const RCODE_SERVFAIL = 2;

export interface DnsQuery {
  readonly id: number;
  readonly recursionDesired: boolean;
  /** Labels lowercased; the name is their join, without a trailing dot ("" for the root). */
  readonly labels: readonly string[];
  readonly name: string;
  readonly qtype: number;
  readonly qclass: number;
  /** The question section as sent (name + type + class), echoed in answers. */
  readonly question: Uint8Array;
  /** Whether the query carried an EDNS0 OPT record (then so does our answer). */
  readonly edns: boolean;
  /** What the answer must fit in: max(EDNS size, 512). */
  readonly udpSize: number;
}

export type ParsedQuery = { readonly ok: true; readonly query: DnsQuery } | { readonly ok: false; readonly reason: string };

const reject = (reason: string): ParsedQuery => ({ ok: false, reason });
const u16 = (b: Uint8Array, p: number) => (b[p] << 8) | b[p + 1];

/** Parse one DNS query datagram strictly; never throws. */
export function parseDnsQuery(packet: unknown): ParsedQuery {
  if (!(packet instanceof Uint8Array)) return reject('not a byte buffer');
  const b = packet;
  if (b.length < DNS_HEADER_BYTES) return reject(`truncated header: ${b.length} bytes, a DNS header has 12`);
  const flags = u16(b, 2);
  if (flags & 0x8000) return reject('QR is set: a response, not a query');
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return reject(`opcode ${opcode} is not QUERY (0)`);
  if (flags & 0x0200) return reject('TC is set on a query');
  const qdcount = u16(b, 4), ancount = u16(b, 6), nscount = u16(b, 8), arcount = u16(b, 10);
  if (qdcount !== 1) return reject(`QDCOUNT is ${qdcount}, a query asks exactly 1 question`);
  if (ancount !== 0 || nscount !== 0) return reject(`a query with ${ancount} answer and ${nscount} authority records`);
  if (arcount > 1) return reject(`ARCOUNT is ${arcount}, at most 1 (EDNS0 OPT) is accepted`);

  let p = DNS_HEADER_BYTES;
  const labels: string[] = [];
  for (;;) {
    if (p >= b.length) return reject('truncated question: the name has no end');
    const len = b[p];
    if ((len & 0xc0) === 0xc0) return reject('compression pointer in the question name');
    if (len & 0xc0) return reject(`label type 0x${(len & 0xc0).toString(16)} is reserved`);
    if (p + 1 + len - DNS_HEADER_BYTES > MAX_NAME_WIRE_BYTES) return reject('name longer than 255 bytes');
    p++;
    if (len === 0) break;
    if (p + len > b.length) return reject('truncated question: a label runs past the packet');
    let label = '';
    for (let i = p; i < p + len; i++) {
      const c = b[i];
      if (c < 0x21 || c > 0x7e || c === 0x2e) return reject(`label byte 0x${c.toString(16)} is not printable ASCII (or is a dot)`);
      label += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 32 : c);
    }
    labels.push(label);
    p += len;
  }
  if (p + 4 > b.length) return reject('truncated question: no QTYPE/QCLASS');
  const qtype = u16(b, p), qclass = u16(b, p + 2);
  if (qclass !== QCLASS_IN) return reject(`QCLASS ${qclass} is not IN (1)`);
  p += 4;
  const question = b.slice(DNS_HEADER_BYTES, p);

  let edns = false, udpSize = MIN_UDP_SIZE;
  if (arcount === 1) {
    if (p + 11 > b.length) return reject('truncated additional record');
    if (b[p] !== 0) return reject('the additional record is not an OPT at the root name');
    const type = u16(b, p + 1);
    if (type !== QTYPE_OPT) return reject(`the additional record has type ${type}, only OPT (41) is accepted`);
    const version = b[p + 6];
    if (version !== 0) return reject(`EDNS version ${version} is not 0`);
    const rdlength = u16(b, p + 9);
    if (p + 11 + rdlength > b.length) return reject('truncated OPT record data');
    edns = true;
    udpSize = Math.max(MIN_UDP_SIZE, u16(b, p + 3));
    p += 11 + rdlength;
  }
  if (p !== b.length) return reject(`${b.length - p} trailing bytes after the last record`);
  return {
    ok: true,
    query: { id: u16(b, 0), recursionDesired: (flags & 0x0100) !== 0, labels, name: labels.join('.'), qtype, qclass, question, edns, udpSize },
  };
}

export type Overflow = 'trim' | 'trim-and-set-tc';

export interface AnswerOptions {
  readonly ttlSeconds: number;
  readonly overflow: Overflow;
}

export type EncodedAnswer =
  | { readonly ok: true; readonly bytes: Uint8Array; readonly answered: number; readonly omitted: number; readonly truncated: boolean }
  | { readonly ok: false; readonly reason: string };

const OPT_BYTES = 11;

/** An IPv6 address in text → its 16 bytes, or null. */
export function ipv6Bytes(text: string): Uint8Array | null {
  if (typeof text !== 'string' || text.includes('/') || text.includes('%') || !Address6.isValid(text)) return null;
  const groups = new Address6(text).canonicalForm().split(':');
  if (groups.length !== 8) return null;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => { const v = parseInt(g, 16); out[2 * i] = v >> 8; out[2 * i + 1] = v & 0xff; });
  return out;
}

function addressBytes(qtype: number, text: string): Uint8Array | null {
  if (qtype === QTYPE_A) {
    let n: number;
    try { n = parseIPv4(text); } catch { return null; } // valid dotted quads take its fast path
    return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  }
  return ipv6Bytes(text);
}

function header(out: Uint8Array, q: DnsQuery, rcode: number, aa: boolean, tc: boolean, ancount: number): void {
  const flags = 0x8000 | (aa ? 0x0400 : 0) | (tc ? 0x0200 : 0) | (q.recursionDesired ? 0x0100 : 0) | 0x0080 | rcode;
  const words = [q.id, flags, 1, ancount, 0, q.edns ? 1 : 0];
  words.forEach((w, i) => { out[2 * i] = w >> 8; out[2 * i + 1] = w & 0xff; });
}

function writeOpt(out: Uint8Array, p: number): void {
  // root name, TYPE OPT, CLASS = our UDP size, TTL = ext-rcode 0, version 0, flags 0, RDLEN 0
  out.set([0, 0, QTYPE_OPT, ANSWER_EDNS_SIZE >> 8, ANSWER_EDNS_SIZE & 0xff, 0, 0, 0, 0, 0, 0], p);
}

/**
 * The answer to an A or AAAA query: one record per address (given in the order to send,
 * rotation is the caller's), or an empty NOERROR when the list is empty (the name exists but has
 * no address of that family). Addresses of the wrong family or bad text are a reason, not bytes.
 */
export function encodeAddressAnswer(q: DnsQuery, addresses: readonly string[], opts: AnswerOptions): EncodedAnswer {
  if (q.qtype !== QTYPE_A && q.qtype !== QTYPE_AAAA) return { ok: false, reason: `QTYPE ${q.qtype} is not A or AAAA` };
  const ttl = opts.ttlSeconds;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff) return { ok: false, reason: `TTL ${ttl} is not an integer in 0..2^31-1` };
  const perRecord = 12 + (q.qtype === QTYPE_A ? 4 : 16);
  const fixed = DNS_HEADER_BYTES + q.question.length + (q.edns ? OPT_BYTES : 0);
  const room = Math.max(0, Math.floor((q.udpSize - fixed) / perRecord));
  const count = Math.min(room, addresses.length);
  const rdatas: Uint8Array[] = [];
  for (let i = 0; i < count; i++) { // only what is sent is converted (and checked)
    const bytes = addressBytes(q.qtype, addresses[i]);
    if (!bytes) return { ok: false, reason: `"${addresses[i]}" is not an ${q.qtype === QTYPE_A ? 'IPv4' : 'IPv6'} address` };
    rdatas.push(bytes);
  }
  const truncated = count < addresses.length && opts.overflow === 'trim-and-set-tc';
  const out = new Uint8Array(fixed + count * perRecord);
  header(out, q, RCODE_NOERROR, true, truncated, count);
  out.set(q.question, DNS_HEADER_BYTES);
  let p = DNS_HEADER_BYTES + q.question.length;
  for (let i = 0; i < count; i++) {
    const r = rdatas[i];
    out.set([0xc0, 0x0c, 0, q.qtype, 0, QCLASS_IN, ttl >>> 24, (ttl >>> 16) & 0xff, (ttl >>> 8) & 0xff, ttl & 0xff, 0, r.length], p);
    out.set(r, p + 12);
    p += perRecord;
  }
  if (q.edns) writeOpt(out, p);
  return { ok: true, bytes: out, answered: count, omitted: addresses.length - count, truncated };
}

/** SERVFAIL for a name that vanished between verdict and answer: Docker then tries its next server. */
export function encodeServerFailure(q: DnsQuery): Uint8Array {
  const out = new Uint8Array(DNS_HEADER_BYTES + q.question.length + (q.edns ? OPT_BYTES : 0));
  header(out, q, RCODE_SERVFAIL, false, false, 0);
  out.set(q.question, DNS_HEADER_BYTES);
  if (q.edns) writeOpt(out, DNS_HEADER_BYTES + q.question.length);
  return out;
}
