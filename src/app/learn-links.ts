/**
 * "Open in the lab": a lesson's runs, at the reader's values, as links to the Compare screen (or the
 * Lab) that carry the same set-up, so an experiment can be taken further by hand. A race whose lanes
 * are distinct methods is one Compare link; a race that repeats a method (two LoRA lanes with
 * different configs) is one link per lane, since the Compare screen holds one form per method. What
 * a link cannot carry (the number of evaluation examples, a field the Compare form lacks, offload
 * settings) is named beside it. No DOM, no tensors.
 */
import { taskById } from '../lib/data/tasks/registry';
import type { LaneSpec, RaceRequest } from '../lib/protocol/compare-protocol';
import type { LessonRun } from '../lib/learn/types';
import type { TaskType } from '../lib/data/tasks/registry';
import { COMPARE_ROUTE, defaultSetup, setupToParams } from './compare-hash';
import type { CompareSetup } from './compare-hash';
import { findMethod } from './method-form';
import type { MethodForm } from './method-form';

export interface LabLink {
  /** The hash to open, e.g. `#/compare?model=peftlab-m&...`. */
  href: string;
  /** What it opens, e.g. "LoRA on c_attn in Compare". */
  label: string;
  /** The parts of the run's set-up the link does not carry, one phrase each. */
  notCarried: string[];
}

/** Where the Lab's "Memory and offload" settings are set (the Lab's link carries task and method only). */
export const OFFLOAD_NOTE = `offload settings and the memory budget: set them in the Lab's "Memory and offload" panel`;

function taskTypeOf(task: string): TaskType {
  return taskById(task)?.taskType ?? 'SEQ_CLS';
}

/**
 * The form the engine trains a lane with: the method's own defaults for the task (what the engine
 * merges a lane's config over, which are not always the Compare screen's starting values) with the
 * lane's config on top. Config fields the Compare form has no field for are returned as left out.
 */
function laneForm(lane: LaneSpec, taskType: TaskType): { form: MethodForm; leftOut: string[] } {
  const info = findMethod(lane.method);
  if (!info) return { form: {}, leftOut: [`method "${lane.method}"`] };
  // A spread is a plain object type, which (unlike the config interface) has an index signature.
  const defaults: Record<string, unknown> = { ...info.defaults(taskType) };
  const form: MethodForm = {};
  for (const spec of info.fields) {
    const v = defaults[spec.field];
    form[spec.field] = Array.isArray(v) ? [...(v as unknown[])] : v;
  }
  const leftOut: string[] = [];
  for (const [field, v] of Object.entries(lane.config ?? {})) {
    if (info.fields.some((f) => f.field === field))
      form[field] = Array.isArray(v) ? [...(v as unknown[])] : v;
    else leftOut.push(`${info.label}'s ${field}`);
  }
  return { form, leftOut };
}

/** The Compare set-up of a race request with these lanes (each a distinct method). */
export function raceSetup(
  model: string,
  req: RaceRequest,
  lanes: readonly LaneSpec[],
): { setup: CompareSetup; notCarried: string[] } {
  const taskType = taskTypeOf(req.task);
  const setup = defaultSetup(model, req.task, taskType);
  const notCarried: string[] = [];
  setup.methods = lanes.map((l) => l.method);
  for (const lane of lanes) {
    const info = findMethod(lane.method);
    if (!info) {
      notCarried.push(`method "${lane.method}"`);
      continue;
    }
    const { form, leftOut } = laneForm(lane, taskType);
    setup.forms[lane.method] = form;
    notCarried.push(...leftOut);
    setup.lr[lane.method] = lane.lr ?? info.defaultLr;
  }
  const s = req.settings;
  setup.steps = s.steps;
  setup.batchSize = s.batchSize;
  setup.seqLen = s.seqLen;
  setup.seed = s.seed;
  setup.evalEvery = s.evalEvery ?? 0;
  setup.timeBudgetS = s.timeBudgetMs ? Math.ceil(s.timeBudgetMs / 1000) : 0;
  if (req.equalBudget) {
    setup.equal = true;
    setup.budget = req.equalBudget;
  }
  if (req.evalExamples !== undefined)
    notCarried.push(`${req.evalExamples} evaluation examples (Compare scores its default number)`);
  if (req.template) setup.template = req.template;
  return { setup, notCarried };
}

function compareLink(model: string, req: RaceRequest, lanes: readonly LaneSpec[], label: string): LabLink {
  const { setup, notCarried } = raceSetup(model, req, lanes);
  return {
    href: `${COMPARE_ROUTE}?${setupToParams(setup, taskTypeOf(req.task)).toString()}`,
    label,
    notCarried,
  };
}

function laneName(lane: LaneSpec): string {
  return lane.name ?? findMethod(lane.method)?.label ?? lane.method;
}

/** The links that open one run's set-up (a probe reads its race: nothing of its own to open). */
export function runLinks(run: LessonRun): LabLink[] {
  if (run.kind === 'probe') return [];
  if (run.kind === 'swarm') {
    // The Swarm screen spreads its own model over peers the reader adds: nothing of the run carries.
    return [
      {
        href: '#/swarm',
        label: 'The swarm on the Swarm screen',
        notCarried: [
          `the model (${run.model}), method and task: the Swarm screen spreads peftlab-s and trains on Moby-Dick`,
          'the peers and link latencies: add peers and set the network there',
        ],
      },
    ];
  }
  if (run.kind === 'offload') {
    const r = run.request;
    const q = new URLSearchParams({ task: r.task, method: r.method });
    const notCarried = [OFFLOAD_NOTE, `the base model (${run.model}): pick it in the Lab`];
    if (r.config && Object.keys(r.config).length)
      notCarried.push(`the method's settings (${Object.keys(r.config).join(', ')})`);
    return [{ href: `#/lab?${q.toString()}`, label: `${run.label} in the Lab`, notCarried }];
  }
  const lanes = run.request.lanes;
  const methods = lanes.map((l) => l.method);
  if (new Set(methods).size === methods.length)
    return [compareLink(run.model, run.request, lanes, `${run.label} in Compare`)];
  // A method twice: the Compare screen holds one form per method, so each lane opens on its own.
  return lanes.map((lane) => compareLink(run.model, run.request, [lane], `${laneName(lane)} in Compare`));
}

/** Every run's links, in run order. */
export function stepLinks(runs: readonly LessonRun[]): LabLink[] {
  return runs.flatMap(runLinks);
}
