/** A chaos drill's report as Markdown tables (printed by bench/chaos.ts and the CI test). */
import type { DrillReport } from './drill.ts';
import { FAULT_DESCRIPTIONS, FAULT_KINDS } from './schedule.ts';

function table(header: string[], rows: Array<Array<string | number>>): string[] {
  const line = (cells: Array<string | number>) => `| ${cells.map((c) => String(c).replace(/\|/g, '\\|').replace(/\n/g, ' ')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)];
}

export function faultTable(r: DrillReport): string[] {
  const rows = FAULT_KINDS.filter((k) => r.schedule.some((f) => f.kind === k)).map((k) => {
    const of = r.outcomes.filter((x) => x.fault.kind === k);
    const skipped = of.filter((x) => !x.injected);
    const reasons = [...new Set(skipped.map((x) => x.detail))].join('; ');
    return [k, r.schedule.filter((f) => f.kind === k).length, of.filter((x) => x.injected).length, skipped.length ? `${skipped.length}: ${reasons}` : '0', FAULT_DESCRIPTIONS[k]];
  });
  return table(['fault', 'scheduled', 'injected', 'skipped (why)', 'what it does'], rows);
}

export function outcomeLines(r: DrillReport): string[] {
  return r.outcomes
    .slice()
    .sort((a, b) => a.atS - b.atS)
    .map((x) => `- ${x.atS.toFixed(0)} s, ${x.fault.kind}: ${x.injected ? '' : 'skipped: '}${x.detail}`);
}

export function resultTable(r: DrillReport): string[] {
  const c = r.comparison;
  const pct = (a: number, b: number) => (b ? `${((100 * a) / b).toFixed(0)}%` : '-');
  const failed = c.notFinished.map((t) => `${t.id.slice(0, 10)} ${t.status} after ${t.attempts} attempt(s): ${(t.error ?? '').slice(0, 160)}`);
  const rows: Array<[string, string | number, string]> = [
    ['trials finished', `${c.finished} / ${c.trials}`, c.finished === c.trials ? 'ok' : 'FAIL'],
    ['trials not finished (state, reason)', failed.length ? failed.join('; ') : '-', failed.length ? 'FAIL' : 'ok'],
    ['attempts (all trials)', `${c.attempts} (undisturbed: ${r.undisturbed.trials})`, 'info'],
    ['metric points expected / stored', `${c.points.expected} / ${c.points.stored}`, c.points.expected === c.points.stored ? 'ok' : 'FAIL'],
    ['metric points missing / extra', `${c.points.missing} / ${c.points.extra}`, c.points.missing + c.points.extra === 0 ? 'ok' : 'FAIL'],
    ['metric points with other values than undisturbed (timing keys aside)', c.points.differing, c.points.differing === 0 ? 'ok' : 'FAIL'],
    ['trials whose final metrics (bestMetric, summary) equal the undisturbed run', `${c.finalEqual} / ${c.trials}`, c.finalDiffering.length === 0 ? 'ok' : 'FAIL'],
    ['W&B history lines expected / received', `${c.wandb.linesExpected} / ${c.wandb.linesReceived}`, c.wandb.linesExpected === c.wandb.linesReceived ? 'ok' : 'FAIL'],
    ['W&B steps missing / delivered twice / other values', `${c.wandb.missing} / ${c.wandb.duplicated} / ${c.wandb.differing}`, c.wandb.missing + c.wandb.duplicated + c.wandb.differing === 0 ? 'ok' : 'FAIL'],
    ['W&B runs not marked finished', c.wandb.runsNotComplete, c.wandb.runsNotComplete === 0 ? 'ok' : 'FAIL'],
    ['W&B lines re-sent to the offset that held them', c.wandb.resent, 'info (idempotent)'],
    [
      'outbox rows: delivered by workers / by `sweep wandb sync` / undelivered',
      `${c.outbox.deliveredByWorkers} / ${c.outbox.deliveredBySync} / ${c.outbox.undelivered} of ${c.outbox.rows}`,
      c.outbox.undelivered === 0 ? 'ok' : 'FAIL',
    ],
    ['workers started / exited with an error on their own', `${r.chaos.workersStarted} / ${r.chaos.workerFailures.length}${r.chaos.workerFailures.length ? ` (${r.chaos.workerFailures.map((w) => `${w.label}: ${w.exit}`).join(', ')})` : ''}`, 'info'],
    ['wall time: undisturbed / chaos', `${r.undisturbed.seconds.toFixed(0)} s / ${r.chaos.seconds.toFixed(0)} s (${pct(r.chaos.seconds, r.undisturbed.seconds)})`, 'info'],
  ];
  return table(['check', 'value', 'verdict'], rows);
}

export function reportMarkdown(r: DrillReport): string {
  const o = r.options;
  return [
    `${o.trials} trials (width 0.0625, ${o.images} generated images, ${o.pretrain} pretrain + ${o.gru} GRU epoch(s), wasm) run by ${o.workers} \`sweep worker --exit-when-idle\` processes on a private Postgres cluster, a private redis-server (append-only) and the fake W&B server; ` +
      `first undisturbed, then under a fault schedule drawn from seed ${o.seed} over the undisturbed run's wall time (${r.windowS.toFixed(0)} s). ` +
      'The chaos run passes when every trial finished and its metric points, final metrics and W&B lines equal the undisturbed run\'s, once each.',
    '',
    `**${r.passed ? 'PASSED' : 'FAILED'}**`,
    '',
    '## Faults',
    '',
    ...faultTable(r),
    '',
    ...(r.diskNote ? [`Artifact disk: ${r.diskNote}`, ''] : []),
    'Schedule (same seed, same schedule; times are fractions of the window):',
    '',
    '```',
    ...r.scheduleLines,
    '```',
    '',
    'What each fault hit:',
    '',
    ...outcomeLines(r),
    '',
    ...(r.chaos.recoveryLines.length
      ? ['What the workers said about damaged checkpoints and a full disk:', '', '```', ...r.chaos.recoveryLines.slice(0, 30).map((l) => l.slice(0, 300)), ...(r.chaos.recoveryLines.length > 30 ? [`... ${r.chaos.recoveryLines.length - 30} more`] : []), '```', '']
      : []),
    '## Checks',
    '',
    ...resultTable(r),
    ...(r.comparison.examples.length ? ['', 'First differences found:', '', ...r.comparison.examples.map((e) => `- ${e}`)] : []),
  ].join('\n');
}
