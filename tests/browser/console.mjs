// Drives headless Chromium (Debian's /usr/bin/chromium) through the web
// console with playwright-core, and prints what it saw as one JSON object
// on stdout; tests/python/test_console.py starts the server and asserts
// on it. Screenshots go to $SCREENSHOTS.
//
// Environment: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD, CONSOLE_JOB
// (the job whose graph to open), CONSOLE_QUERY (a bounded query),
// CONSOLE_BAD_QUERY (one that fails to plan), CONSOLE_SUBSCRIPTION (an
// unbounded query), SCREENSHOTS.
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const url = env("CONSOLE_URL");
const shots = env("SCREENSHOTS");
const seen = { steps: [] };
const step = (name) => seen.steps.push(name);

// Polls `predicate` in the page until it is true. (Playwright's
// waitForFunction compiles its predicate from text in the page, which the
// console's Content-Security-Policy rightly forbids; evaluate does not.)
async function waitUntil(page, predicate, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await page.evaluate(predicate))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await page.waitForTimeout(100);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root in a container has no user namespaces for Chromium's sandbox.
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  page.setDefaultTimeout(30_000);
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  // A wrong password first: the form says so and stays.
  await page.goto(url);
  await page.waitForSelector("#page-login:not([hidden])");
  await page.fill("#login-user", env("CONSOLE_USER"));
  await page.fill("#login-password", "not-the-password");
  await page.click("#login-form button[type=submit]");
  await waitUntil(page, () => document.querySelector("#login-error").textContent.length > 0, "the login error");
  seen.wrongPassword = await page.textContent("#login-error");
  step("wrong password");

  await page.fill("#login-password", env("CONSOLE_PASSWORD"));
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#page-jobs:not([hidden]) #jobs-table tbody tr");
  seen.who = await page.textContent("#who");
  seen.jobs = await page.$$eval("#jobs-table tbody tr", (rows) =>
    rows.map((r) => [...r.cells].map((c) => c.textContent)),
  );
  await page.screenshot({ path: `${shots}/console-jobs.png`, fullPage: true });
  step("job list");

  // The job's graph: one box per operator, named.
  await page.click(`#jobs-table a:text-is("${env("CONSOLE_JOB")}")`);
  await page.waitForSelector("#page-job:not([hidden]) svg#graph g.operator");
  // Two polls, so that the rates are measured over a second.
  await page.waitForTimeout(2200);
  seen.operators = await page.$$eval("svg#graph g.operator", (gs) => gs.map((g) => g.getAttribute("data-operator")));
  seen.edges = await page.$$eval("svg#graph path.edge", (ps) => ps.length);
  seen.operatorText = await page.$$eval("svg#graph g.operator", (gs) => gs.map((g) => g.textContent));
  // Clicking an operator lists its subtasks.
  await page.click("svg#graph g.operator >> nth=0");
  await page.waitForSelector("#operator-detail:not([hidden]) #subtasks-table tbody tr");
  seen.subtasks = await page.$$eval("#subtasks-table tbody tr", (rows) => rows.length);
  seen.operatorTitle = await page.textContent("#operator-title");
  seen.checkpoints = await page.$$eval("#checkpoints-table tbody tr", (rows) => rows.length);
  await page.screenshot({ path: `${shots}/console-job-graph.png`, fullPage: true });
  step("job graph");

  // The SQL editor: a query's rows, then an error with its position.
  await page.click('#nav a[data-page="sql"]');
  await page.waitForSelector("#page-sql:not([hidden])");
  await page.fill("#sql-text", env("CONSOLE_QUERY"));
  await page.click("#sql-run");
  await page.waitForSelector("#sql-result tbody tr");
  await waitUntil(page, () => !document.querySelector("#sql-status").textContent.includes("running"), "the query to end");
  seen.queryColumns = await page.$$eval("#sql-result thead th", (ths) => ths.map((t) => t.textContent));
  seen.queryRows = await page.$$eval("#sql-result tbody tr", (rows) =>
    rows.map((r) => [...r.cells].map((c) => c.textContent)),
  );
  await page.screenshot({ path: `${shots}/console-sql.png`, fullPage: true });
  step("query");

  await page.fill("#sql-text", env("CONSOLE_BAD_QUERY"));
  await page.click("#sql-run");
  await page.waitForSelector("#sql-error:not([hidden])");
  seen.queryError = await page.textContent("#sql-error");
  step("query error");

  // A subscription streams rows until stopped.
  await page.fill("#sql-text", env("CONSOLE_SUBSCRIPTION"));
  await page.click("#sql-run");
  await waitUntil(page, () => document.querySelectorAll("#sql-result tbody tr").length >= 3, "three streamed rows");
  seen.streamStatus = await page.textContent("#sql-status");
  seen.streamed = await page.$$eval("#sql-result tbody tr", (rows) => rows.length);
  await page.click("#sql-stop");
  await waitUntil(page, () => document.querySelector("#sql-status").textContent.includes("stopped"), "the subscription to stop");
  step("subscription");

  // The catalog: a table's columns with their types and tags.
  await page.click('#nav a[data-page="catalog"]');
  await page.waitForSelector("#catalog-tables li");
  seen.catalogTables = await page.$$eval("#catalog-tables li a", (as) => as.map((a) => a.textContent));
  if (process.env.CONSOLE_TABLE) {
    await page.click(`#catalog-tables a:text-is("${process.env.CONSOLE_TABLE}")`);
    await page.waitForSelector("#catalog-columns tbody tr");
    seen.catalogColumns = await page.$$eval("#catalog-columns tbody tr", (rows) =>
      rows.map((r) => [...r.cells].map((c) => c.textContent)),
    );
    seen.catalogLineage = await page.$$eval("#catalog-lineage tbody tr", (rows) => rows.length);
    await page.screenshot({ path: `${shots}/console-catalog.png`, fullPage: true });
  }
  step("catalog");
  seen.pageErrors = consoleErrors;
} catch (e) {
  seen.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen) + "\n");
