/**
 * How an issue zod raises itself reads to a user: "expected an integer, got the string
 * "ten"", "unknown key `maxx`; did you mean `max`? Allowed here: ...". Used as the per-parse
 * error map, so it sees the schema that raised the issue; messages the schema words itself
 * (custom issues, a schema's own `error`) take precedence over these.
 */
import type { z } from 'zod';
import { didYouMean } from '../util/nearest.ts';
import { describeValue, unknownKeyMessage, type KeyPath } from './errors.ts';
import type { IssuePlacement } from './schema.ts';

type RawIssue = z.core.$ZodRawIssue;

/** Parts of a zod schema read here: its object shape and its `.describe()` text. */
interface SchemaView {
  _zod?: { def?: { shape?: Record<string, unknown> } };
  description?: string;
  isInt?: boolean;
}

/**
 * The message of an issue. For unrecognized keys, one line per key, in the issue's key order
 * (parse.ts shows each at its own key).
 */
export function wordIssue(iss: RawIssue): string | undefined {
  const input = iss.input;
  const inst = iss.inst as SchemaView | undefined;
  switch (iss.code) {
    case 'custom': {
      const say = (iss.params as IssuePlacement | undefined)?.say;
      return say ? say((iss.path ?? []) as KeyPath) : undefined;
    }
    case 'unrecognized_keys': {
      const allowed = Object.keys(inst?._zod?.def?.shape ?? {});
      const where = inst?.description ? ` (${inst.description})` : '';
      return iss.keys.map((key) => `${unknownKeyMessage(key, allowed)}${where}`).join('\n');
    }
    case 'invalid_type': {
      if (typeof input === 'number' && !Number.isFinite(input)) return `${input} is not allowed here: use a finite number`;
      // z.number().int() reports `number` for a non-number; say integer when that is what it takes.
      const expected = expectedName(iss.expected === 'number' && inst?.isInt === true ? 'int' : iss.expected);
      return input === undefined ? `required: ${expected}` : `expected ${expected}, got ${describeValue(input)}`;
    }
    case 'invalid_value': {
      const options = iss.values.map((v) => String(v));
      if (input === undefined) return `required: one of ${options.join(', ')}`;
      const near = typeof input === 'string' ? didYouMean(input, options) : '';
      return `expected ${options.length === 1 ? options[0] : `one of ${options.join(', ')}`}, got ${describeValue(input)}${near}`;
    }
    case 'too_small':
    case 'too_big': {
      const small = iss.code === 'too_small';
      const bound = Number(small ? iss.minimum : iss.maximum);
      if (iss.origin === 'array') return small ? `must have at least ${bound} item${bound === 1 ? '' : 's'}` : `must have at most ${bound} items`;
      if (iss.origin === 'string') return small ? 'must not be empty' : `must be at most ${bound} characters`;
      const op = small ? (iss.inclusive !== false ? '>=' : '>') : iss.inclusive !== false ? '<=' : '<';
      return `must be ${op} ${bound}, got ${describeValue(input)}`;
    }
    case 'invalid_union': {
      // parse.ts shows the branch the user evidently meant when there is one; else this.
      const expected = iss.errors.flatMap((b) => b.filter((i) => i.code === 'invalid_type' && i.path.length === 0).map((i) => expectedName((i as { expected: string }).expected)));
      return `expected ${[...new Set(expected)].join(' or ')}, got ${describeValue(input)}`;
    }
    case 'invalid_key':
      return iss.issues.map((i) => i.message).join('; ');
    default:
      return undefined;
  }
}

function expectedName(e: string): string {
  switch (e) {
    case 'int':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
    case 'record':
      return 'a mapping';
    default:
      return e;
  }
}
