// What the browser drivers share: Debian's Chromium through playwright-core with a fake microphone
// playing a WAV file, waits on conditions in the page (never a fixed delay), and the page's first
// steps (open, choose a transport, connect). Each driver keeps its findings in one ``report``
// object and prints it as JSON for the pytest test that started it.

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

// playwright-core is a dev dependency of web/; resolve it from there.
const require = createRequire(new URL("../../web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

/**
 * The driver's command line: ``--url``, ``--wav``, ``--profile`` (required), ``--chromium`` and
 * ``--timeout-ms`` (default ``timeoutMs``), and the driver's own ``options`` (as parseArgs takes them).
 */
export function driverOptions(options, { timeoutMs = "20000" } = {}) {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      wav: { type: "string" },
      profile: { type: "string" },
      chromium: { type: "string", default: "/usr/bin/chromium" },
      "timeout-ms": { type: "string", default: timeoutMs },
      ...options,
    },
  });
  for (const required of ["url", "wav", "profile"]) {
    if (!values[required]) throw new Error(`--${required} is required`);
  }
  return values;
}

/**
 * Runs a driver's ``steps(page)`` in a Chromium launched with ``wav`` on the fake microphone
 * (``opts.wav`` unless given), closes it whatever happens, prints ``report`` as one JSON line and
 * exits 0 only when every step passed.
 */
export async function runDriver(opts, report, steps, { wav = opts.wav } = {}) {
  let context;
  try {
    let page;
    ({ context, page } = await launch({ profile: opts.profile, wav, executablePath: opts.chromium }, report));
    await steps(page);
    report.stage = "done";
    report.ok = true;
  } catch (error) {
    report.error = String(error?.stack ?? error);
  } finally {
    await context?.close().catch(() => {});
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exitCode = report.ok ? 0 : 1;
}

/** A new report: ``stage`` names the step under way, so a failure says where it happened. */
export function newReport() {
  return { ok: false, stage: "launch", pageErrors: [], consoleErrors: [], console: [] };
}

/**
 * Launches Chromium with the fake microphone playing ``wav`` (Chromium loops it unless the path
 * ends with ``%noloop``), and returns its context and page, with the page's errors and console
 * going into ``report``. WebRTC is kept to loopback candidates on both sides.
 */
export async function launch({ profile, wav, executablePath = "/usr/bin/chromium" }, report) {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 820 },
    deviceScaleFactor: 1,
    permissions: ["microphone"],
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--disable-extensions",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${wav}`,
      "--autoplay-policy=no-user-gesture-required",
      // WebRTC on loopback: gather 127.0.0.1 candidates, and real addresses instead of mDNS names.
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (error) => report.pageErrors.push(String(error)));
  page.on("console", (message) => {
    const line = `${message.type()}: ${message.text()}`;
    if (message.type() === "error") report.consoleErrors.push(line);
    const noise = line.startsWith("debug: [MessageDispatcher]"); // the client's request bookkeeping
    if (!noise && report.console.length < 200) report.console.push(line);
  });

  // WebRTC: the server's candidates are loopback only; keep the browser's to loopback too, so no
  // connectivity check ever goes to another address of this machine.
  report.droppedCandidates = 0;
  await page.route(/\/api\/offer$/, async (route) => {
    const request = route.request();
    const body = request.postDataJSON();
    const loopback = (candidate) => !candidate || candidate.includes(" 127.0.0.1 ");
    if (request.method() === "PATCH" && Array.isArray(body?.candidates)) {
      const kept = body.candidates.filter((c) => loopback(c.candidate));
      report.droppedCandidates += body.candidates.length - kept.length;
      body.candidates = kept;
    } else if (typeof body?.sdp === "string") {
      const lines = body.sdp.split("\r\n");
      const kept = lines.filter((line) => !line.startsWith("a=candidate:") || loopback(line));
      report.droppedCandidates += lines.length - kept.length;
      body.sdp = kept.join("\r\n");
    }
    await route.continue({ postData: JSON.stringify(body) });
  });
  return { context, page };
}

/** Returns ``until(page, what, fn, arg)``: waits for a condition in the page; a timeout names what
 * was awaited (and ``report.stage`` says it meanwhile). */
export function waiter(report, timeout) {
  return async function until(page, what, fn, arg) {
    report.stage = what;
    try {
      await page.waitForFunction(fn, arg, { timeout, polling: "raf" });
    } catch (error) {
      throw new Error(`timed out waiting for: ${what} (${error.message.split("\n")[0]})`);
    }
  };
}

export async function shoot(page, dir, name) {
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true, animations: "disabled" });
}

/** Opens the page and waits for its test hook. */
export async function openPage(page, url, until) {
  await page.goto(url);
  await until(page, "the page's test hook", () => window.voxloop?.client);
}

/** Chooses the transport as a person would: clicks the segment's label (the radio itself is
 * styled away). WebSocket is the page's default. */
export async function chooseTransport(page, transport, until) {
  if (transport === "websocket") return;
  await page.click(`#transports label:has(input[value="${transport}"])`);
  await until(page, `the ${transport} client`, (id) => window.voxloop.transport === id, transport);
}

/** Clicks Connect and waits for the bot to be ready. */
export async function connect(page, until) {
  await page.click("#connect");
  await until(page, "onBotReady", () => window.voxloop.events.some((e) => e.name === "onBotReady"));
}

/** Clicks Disconnect and waits for the client to be disconnected. */
export async function disconnect(page, until) {
  await page.click("#connect");
  await until(page, "state disconnected", () => window.voxloop.client.state === "disconnected");
}

/** The conversation view as [who, text] rows. */
export async function conversationView(page) {
  return page.$$eval(".turn", (turns) =>
    turns.map((t) => [
      t.classList.contains("bot") ? "bot" : t.classList.contains("typed") ? "user typed" : "user",
      t.querySelector(".bubble").textContent,
    ]),
  );
}
