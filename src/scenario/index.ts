// The scenario runner (`cxl-mhd run`): scenario files, their schema, the run, and its reports.
export { AgentError, type ExecResult, GuestAgent } from './agent.js';
export { cpioNewc, guestBootArgs, initrdWithModules, moduleFiles, projectGuest } from './image.js';
export {
  type HeadSpec,
  loadScenario,
  parseScenario,
  type QemuCondition,
  qemuConditionHolds,
  type Scenario,
  ScenarioFileError,
  type StepSpec,
} from './load.js';
export {
  humanDetail,
  humanLine,
  junitXml,
  passed,
  type RunReport,
  type StepResult,
  summaryLine,
  tapBailOut,
  tapLines,
  tapPlan,
} from './report.js';
export { type RunOptions, type RunOutcome, runScenario } from './runner.js';
export { checkSchema, demoScenarioPath, projectRoot, schemaPath } from './schema.js';
export { patternBytes } from './steps.js';
export { vmArgv } from './vm.js';
