// Owns how a run's results are told: one human line per step, TAP 13, and
// JUnit XML (one testcase per step; output always, console tails on failure).
import { hostname } from 'node:os';
import type { StepSpec } from './load.js';

export type StepStatus = 'passed' | 'failed' | 'skipped';

export interface StepResult {
  step: StepSpec;
  status: StepStatus;
  message: string;
  stdout: string;
  stderr: string;
  /** Console tails of the heads involved, on failure. */
  consoles: { head: number; tail: string }[];
  durationMs: number;
  attempts: number;
  /** Skipped because the step's `qemu:` condition does not hold for this QEMU: not a failure. */
  forOtherQemu?: boolean;
}

export interface RunReport {
  name: string;
  file: string;
  pool: string;
  startedAt: Date;
  durationMs: number;
  /** Set when the heads never got to run steps (boot failed, or interrupted). */
  bootError: { message: string; consoles: { head: number; tail: string }[] } | null;
  interrupted: boolean;
  results: StepResult[];
}

const secs = (ms: number) => (ms / 1000).toFixed(1);

export function humanLine(r: StepResult): string {
  const head = `${r.step.index} - ${r.step.name}`;
  if (r.status === 'passed') return `ok   ${head} (${secs(r.durationMs)} s${r.attempts > 1 ? `, ${r.attempts} attempts` : ''})`;
  if (r.status === 'skipped') return `skip ${head}: ${r.message}`;
  return `FAIL ${head}: ${r.message} (${secs(r.durationMs)} s${r.attempts > 1 ? `, ${r.attempts} attempts` : ''})`;
}

/** A failure's output, indented, for the terminal. */
export function humanDetail(r: Pick<StepResult, 'stdout' | 'stderr' | 'consoles'>, maxLines = 20): string[] {
  const out: string[] = [];
  const block = (title: string, text: string) => {
    const lines = text.replace(/\s+$/, '').split('\n');
    if (lines.length === 1 && lines[0] === '') return;
    out.push(`     ${title}:`);
    for (const l of lines.slice(-maxLines)) out.push(`       | ${l}`);
  };
  block('stdout', r.stdout);
  block('stderr', r.stderr);
  for (const c of r.consoles) block(`head ${c.head} console (last lines)`, c.tail);
  return out;
}

export function summaryLine(rep: RunReport): string {
  const n = (s: StepStatus) => rep.results.filter((r) => r.status === s).length;
  const what = rep.interrupted ? 'interrupted' : rep.bootError ? `boot failed: ${rep.bootError.message}` : null;
  return `${rep.results.length} steps: ${n('passed')} passed, ${n('failed')} failed, ${n('skipped')} skipped in ${secs(rep.durationMs)} s${what ? ` (${what})` : ''}`;
}

export function passed(rep: RunReport): boolean {
  return !rep.interrupted && rep.bootError === null && rep.results.every((r) => r.status === 'passed' || r.forOtherQemu === true);
}

function tapYaml(fields: Record<string, string>): string[] {
  const out = ['  ---'];
  for (const [k, v] of Object.entries(fields)) {
    if (v === '') continue;
    if (!v.includes('\n')) out.push(`  ${k}: ${JSON.stringify(v)}`);
    else {
      out.push(`  ${k}: |`);
      for (const l of v.replace(/\s+$/, '').split('\n')) out.push(`    ${l}`);
    }
  }
  out.push('  ...');
  return out;
}

export function tapPlan(count: number): string[] {
  return ['TAP version 13', `1..${count}`];
}

export function tapLines(r: StepResult): string[] {
  const name = `${r.step.index} - ${r.step.name.replace(/#/g, '\\#')}`;
  if (r.status === 'passed') return [`ok ${name}`];
  if (r.status === 'skipped') return [`ok ${name} # SKIP ${r.message}`];
  return [
    `not ok ${name}`,
    ...tapYaml({
      message: r.message,
      stdout: r.stdout,
      stderr: r.stderr,
      ...Object.fromEntries(r.consoles.map((c) => [`console_head${c.head}`, c.tail])),
    }),
  ];
}

export function tapBailOut(rep: RunReport): string[] {
  if (rep.interrupted) return ['Bail out! interrupted'];
  if (rep.bootError) return [`Bail out! boot failed: ${rep.bootError.message}`];
  return [];
}

/** Text XML 1.0 can carry: control characters other than tab/newline/CR are dropped. */
function xml(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  const clean = text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '');
  return clean.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function junitXml(rep: RunReport): string {
  const n = (s: StepStatus) => rep.results.filter((r) => r.status === s).length;
  const cases: string[] = [];
  const errors = rep.bootError || rep.interrupted ? 1 : 0;
  if (errors) {
    const msg = rep.interrupted ? 'interrupted (SIGINT/SIGTERM)' : `boot failed: ${rep.bootError?.message}`;
    const consoles = (rep.bootError?.consoles ?? []).map((c) => `--- head ${c.head} console (last lines)\n${c.tail}\n`).join('');
    cases.push(
      `    <testcase classname="${xml(rep.name)}" name="${rep.interrupted ? 'run' : 'boot'}" time="0">`,
      `      <error message="${xml(msg)}" type="${rep.interrupted ? 'interrupted' : 'boot'}">${xml(msg)}</error>`,
      ...(consoles ? [`      <system-err>${xml(consoles)}</system-err>`] : []),
      '    </testcase>',
    );
  }
  for (const r of rep.results) {
    const attrs = `classname="${xml(rep.name)}" name="${xml(`${String(r.step.index).padStart(2, '0')} ${r.step.name}`)}" time="${(r.durationMs / 1000).toFixed(3)}" file="${xml(rep.file)}" line="${r.step.line}"`;
    const body: string[] = [];
    if (r.status === 'failed')
      body.push(
        `      <failure message="${xml(r.message)}" type="${r.step.kind}">${xml(`${r.step.kind}: ${r.step.command}\n${r.message}`)}</failure>`,
      );
    if (r.status === 'skipped') body.push(`      <skipped message="${xml(r.message)}"/>`);
    if (r.stdout) body.push(`      <system-out>${xml(r.stdout)}</system-out>`);
    const err = r.stderr + r.consoles.map((c) => `\n--- head ${c.head} console (last lines)\n${c.tail}\n`).join('');
    if (err) body.push(`      <system-err>${xml(err)}</system-err>`);
    cases.push(body.length ? `    <testcase ${attrs}>\n${body.join('\n')}\n    </testcase>` : `    <testcase ${attrs}/>`);
  }
  const counts = `tests="${rep.results.length + errors}" failures="${n('failed')}" errors="${errors}" skipped="${n('skipped')}" time="${(rep.durationMs / 1000).toFixed(3)}"`;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="cxl-mhd run" ${counts}>`,
    `  <testsuite name="${xml(rep.name)}" ${counts} timestamp="${rep.startedAt.toISOString().replace(/\.\d+Z$/, '')}" hostname="${xml(hostname())}">`,
    '    <properties>',
    `      <property name="scenario" value="${xml(rep.file)}"/>`,
    `      <property name="pool" value="${xml(rep.pool)}"/>`,
    '    </properties>',
    ...cases,
    '  </testsuite>',
    '</testsuites>',
    '',
  ].join('\n');
}
