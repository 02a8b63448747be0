// Drives voxloop's web page in headless Chromium (Debian's, through playwright-core) with a fake
// microphone playing a WAV file, and prints one JSON report on stdout for the pytest test that
// started it. Every wait is on a condition in the page, never a fixed delay.
//
//   node drive.mjs --url http://127.0.0.1:PORT/ --wav mic.wav --profile DIR [--transport webrtc]
//                  [--mic-seconds 7] [--bot-seconds 4] [--typed TEXT] [--heard TRANSCRIPT]
//                  [--screenshots DIR] [--timeout-ms 20000]

import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

// playwright-core is a dev dependency of web/; resolve it from there.
const require = createRequire(new URL("../../web/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    transport: { type: "string", default: "websocket" },
    wav: { type: "string" },
    profile: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    "mic-seconds": { type: "string", default: "7" },
    "bot-seconds": { type: "string", default: "4" },
    "timeout-ms": { type: "string", default: "20000" },
    screenshots: { type: "string" },
    typed: { type: "string", default: "Hello from the browser" },
    heard: { type: "string" },
  },
});
for (const required of ["url", "wav", "profile"]) {
  if (!opts[required]) throw new Error(`--${required} is required`);
}
const micSeconds = Number(opts["mic-seconds"]);
const botSeconds = Number(opts["bot-seconds"]);
const timeout = Number(opts["timeout-ms"]);

const report = { ok: false, stage: "launch", pageErrors: [], consoleErrors: [], console: [] };
let context;

/** Waits for a condition in the page; a timeout names what was awaited. */
async function until(page, what, fn, arg) {
  report.stage = what;
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: "raf" });
  } catch (error) {
    throw new Error(`timed out waiting for: ${what} (${error.message.split("\n")[0]})`);
  }
}

async function shoot(page, name) {
  if (!opts.screenshots) return;
  mkdirSync(opts.screenshots, { recursive: true });
  await page.screenshot({ path: join(opts.screenshots, `${name}.png`), fullPage: true, animations: "disabled" });
}

try {
  context = await chromium.launchPersistentContext(opts.profile, {
    executablePath: opts.chromium,
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
      `--use-file-for-fake-audio-capture=${opts.wav}`,
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

  report.stage = "open page";
  await page.goto(opts.url);
  await until(page, "the page's test hook", () => window.voxloop?.client);
  report.initialState = await page.evaluate(() => window.voxloop.client.state);
  report.transports = await page.$$eval("#transports input", (inputs) =>
    inputs.map((i) => ({ id: i.value, checked: i.checked, disabled: i.disabled })),
  );
  await shoot(page, "1-idle");

  if (opts.transport !== "websocket") {
    report.stage = `choose ${opts.transport}`;
    // As a person would: click the segment's label (the radio itself is styled away).
    await page.click(`#transports label:has(input[value="${opts.transport}"])`);
    await until(page, `the ${opts.transport} client`, (id) => window.voxloop.transport === id, opts.transport);
  }

  report.stage = "connect";
  await page.click("#connect");
  await until(page, "onBotReady", () => window.voxloop.events.some((e) => e.name === "onBotReady"));
  report.botReady = await page.evaluate(() => window.voxloop.events.find((e) => e.name === "onBotReady").data);
  report.stateAfterBotReady = await page.evaluate(() => window.voxloop.client.state);
  report.timings = await page.evaluate(() => window.voxloop.timings);
  report.statusText = await page.textContent("#status-text");
  report.connectButton = await page.textContent("#connect");

  report.stage = "server status while connected";
  report.serverStatusConnected = await page.evaluate(async () => (await fetch("/status")).json());

  report.stage = "client request";
  report.requestReply = await page.evaluate(() =>
    window.voxloop.client.sendClientRequest("ping", { n: 42, from: "browser" }),
  );

  report.stage = "refused request";
  report.refusedRequest = await page.evaluate(async () => {
    try {
      await window.voxloop.client.sendClientRequest("fail", {});
      return { rejected: false };
    } catch (error) {
      return { rejected: true, error: String(error?.message ?? JSON.stringify(error)) };
    }
  });
  await until(page, "the error banner", () => !document.getElementById("error").hidden);
  report.errorBanner = await page.textContent("#error-text");
  await page.click("#error-close");

  report.stage = "send text";
  await page.fill("#text", opts.typed);
  await page.click("#send");
  await until(
    page,
    "the typed message in the conversation",
    (typed) => [...document.querySelectorAll(".turn.user.typed .bubble")].some((b) => b.textContent === typed),
    opts.typed,
  );
  if (opts.heard) {
    await until(
      page,
      "the user transcript and the bot's answer in the conversation",
      (heard) =>
        [...document.querySelectorAll(".turn.user:not(.typed) .bubble")].some((b) => b.textContent === heard) &&
        document.querySelector(".turn.bot .bubble")?.textContent,
      opts.heard,
    );
  }
  report.conversation = await page.$$eval(".turn", (turns) =>
    turns.map((t) => [
      t.classList.contains("bot") ? "bot" : t.classList.contains("typed") ? "user typed" : "user",
      t.querySelector(".bubble").textContent,
    ]),
  );

  await until(
    page,
    `${micSeconds} s of mic audio sent and ${botSeconds} s of bot audio received and played`,
    ([mic, bot]) => {
      const audio = window.voxloop.audio();
      return audio.mic.seconds >= mic && audio.bot.seconds >= bot && audio.botPlayedPeakLevel > 0;
    },
    [micSeconds, botSeconds],
  );
  report.audioConnected = await page.evaluate(() => window.voxloop.audio());
  report.botAudioElements = await page.$$eval("audio[data-voxloop]", (els) =>
    els.map((e) => ({ paused: e.paused, tracks: e.srcObject?.getTracks().length ?? 0 })),
  );
  await shoot(page, `2-connected-${opts.transport}`);

  report.stage = "mic toggle";
  await page.click("#mic");
  await until(page, "mic off", () => !window.voxloop.client.isMicEnabled);
  report.micOffLabel = await page.textContent("#mic-label");
  await page.click("#mic");
  await until(page, "mic on again", () => window.voxloop.client.isMicEnabled);

  report.stage = "disconnect";
  await page.click("#connect");
  await until(page, "state disconnected", () => window.voxloop.client.state === "disconnected");
  report.finalState = await page.evaluate(() => window.voxloop.client.state);
  report.finalStatusText = await page.textContent("#status-text");
  report.finalConnectButton = await page.textContent("#connect");
  report.audio = await page.evaluate(() => window.voxloop.audio());
  report.pageErrorMessages = await page.evaluate(() => window.voxloop.errors);
  report.events = await page.evaluate(() => window.voxloop.events);
  report.botAudioElementsAfter = await page.$$eval("audio[data-voxloop]", (els) => els.length);
  await shoot(page, "3-disconnected");
  report.stage = "done";
  report.ok = true;
} catch (error) {
  report.error = String(error?.stack ?? error);
} finally {
  await context?.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exitCode = report.ok ? 0 : 1;
