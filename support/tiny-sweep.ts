/** Sweep files small enough to train in seconds, for tests and fault drills. */

/**
 * A tiny sweep: width 0.0625 on 48 generated railway CAPTCHAs (a quarter held out), one
 * pretrain and one GRU epoch at batch 16. `dropout` is swept; the seed keeps trial ids stable.
 */
export function tinySweep(opts: { name: string; dropout?: number[]; pretrain?: number; gru?: number; count?: number; extra?: string } ): string {
  const dropout = opts.dropout ?? [0.1, 0.2];
  return [
    `name: ${opts.name}`,
    'method: grid',
    'metric: {name: val_seq_acc, goal: maximize}',
    'seed: 0',
    'train:',
    `  generate: {style: railway, count: ${opts.count ?? 48}, seed: 1}`,
    '  val_fraction: 0.25',
    '  width: 0.0625',
    `  pretrain_epochs: ${opts.pretrain ?? 1}`,
    `  gru_epochs: ${opts.gru ?? 1}`,
    '  batch_size: 16',
    '  backend: wasm',
    ...(opts.extra ? [opts.extra] : []),
    'parameters:',
    '  dropout:',
    `    values: [${dropout.join(', ')}]`,
    '',
  ].join('\n');
}
