/**
 * Reading JSON objects the way Go's encoding/json fills a struct, which is how flanneld reads its
 * config and leases: a key matches a field name case-insensitively (an exact match wins), unknown
 * keys are ignored, and a value of the wrong type is an error naming the field.
 */
import { invalid } from '../errors';

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The value of `field` in `obj`, matched as Go does; undefined when absent (or JSON null). */
export function field(obj: JsonObject, name: string): unknown {
  if (Object.prototype.hasOwnProperty.call(obj, name)) return obj[name] ?? undefined;
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k] ?? undefined;
  return undefined;
}

export function stringField(obj: JsonObject, name: string, where: string): string | undefined {
  const v = field(obj, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(`${where}: "${name}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

export function intField(obj: JsonObject, name: string, where: string, min: number, max: number): number | undefined {
  const v = field(obj, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw invalid(`${where}: "${name}" must be a whole number, got ${JSON.stringify(v)}`);
  }
  if (v < min || v > max) throw invalid(`${where}: "${name}" must be between ${min} and ${max}, got ${v}`);
  return v;
}

export function boolField(obj: JsonObject, name: string, where: string): boolean | undefined {
  const v = field(obj, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalid(`${where}: "${name}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function parseJsonObject(text: string, where: string): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw invalid(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) throw invalid(`${where}: must be a JSON object, got ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}
