// Sums vitest JSON reports, one per Node version: `node .ci/summary.mjs <label>=<report.json>...`.
// Prints "<label>: N passed, N failed" per report, then CI's closing line "N passed, N failed" for
// all of them; exits 1 when anything failed or a report is missing.
import { readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
/** What failed, listed again just above the closing lines: CI keeps only the tail of the output. */
const failures = [];
for (const arg of process.argv.slice(2)) {
  const at = arg.indexOf('=');
  const label = arg.slice(0, at);
  let report;
  try {
    report = JSON.parse(readFileSync(arg.slice(at + 1), 'utf8'));
  } catch {
    // The run never got as far as its report (a build or a crash): one failure, so CI cannot pass.
    console.log(`${label}: no test report`);
    failed += 1;
    continue;
  }
  // A file that fails before its tests run (an import error, a throwing beforeAll) has no failed
  // test of its own; count it, or the line would say "0 failed" for a red run.
  const brokenFiles = report.testResults.filter(
    (file) => file.status === 'failed' && !file.assertionResults.some((test) => test.status === 'failed'),
  ).length;
  const runFailed = report.numFailedTests + brokenFiles;
  for (const file of report.testResults) {
    const name = file.name.slice(file.name.lastIndexOf('/test/') + 1);
    if (file.status === 'failed' && !file.assertionResults.some((test) => test.status === 'failed')) {
      failures.push(`${label} ${name}: ${firstLine(file.message)}`);
    }
    for (const test of file.assertionResults.filter((t) => t.status === 'failed')) {
      failures.push(`${label} ${name} > ${test.fullName}: ${firstLine(test.failureMessages?.[0])}`);
    }
  }
  console.log(`${label}: ${report.numPassedTests} passed, ${runFailed} failed`);
  passed += report.numPassedTests;
  failed += runFailed;
}
for (const line of failures) console.log(`FAILED ${line}`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;

/** The first line of a failure message, at most 300 characters. */
function firstLine(message) {
  return String(message ?? 'no message').split('\n', 1)[0].slice(0, 300);
}
