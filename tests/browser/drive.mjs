// Drives voxloop's web page in headless Chromium (Debian's, through playwright-core) with a fake
// microphone playing a WAV file, and prints one JSON report on stdout for the pytest test that
// started it. Every wait is on a condition in the page, never a fixed delay.
//
//   node drive.mjs --url http://127.0.0.1:PORT/ --wav mic.wav --profile DIR [--transport webrtc]
//                  [--mic-seconds 7] [--bot-seconds 4] [--typed TEXT] [--heard TRANSCRIPT]
//                  [--screenshots DIR] [--timeout-ms 20000]

import {
  chooseTransport,
  connect,
  conversationView,
  disconnect,
  driverOptions,
  newReport,
  openPage,
  runDriver,
  shoot as shootInto,
  waiter,
} from "./browser.mjs";

const opts = driverOptions({
  transport: { type: "string", default: "websocket" },
  "mic-seconds": { type: "string", default: "7" },
  "bot-seconds": { type: "string", default: "4" },
  screenshots: { type: "string" },
  typed: { type: "string", default: "Hello from the browser" },
  heard: { type: "string" },
});
const micSeconds = Number(opts["mic-seconds"]);
const botSeconds = Number(opts["bot-seconds"]);
const timeout = Number(opts["timeout-ms"]);

const report = newReport();
const until = waiter(report, timeout);
const shoot = (page, name) => shootInto(page, opts.screenshots, name);
await runDriver(opts, report, async (page) => {
  report.stage = "open page";
  await openPage(page, opts.url, until);
  report.initialState = await page.evaluate(() => window.voxloop.client.state);
  report.transports = await page.$$eval("#transports input", (inputs) =>
    inputs.map((i) => ({ id: i.value, checked: i.checked, disabled: i.disabled })),
  );
  await shoot(page, "1-idle");

  report.stage = `choose ${opts.transport}`;
  await chooseTransport(page, opts.transport, until);

  report.stage = "connect";
  await connect(page, until);
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
  report.conversation = await conversationView(page);

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
  await disconnect(page, until);
  report.finalState = await page.evaluate(() => window.voxloop.client.state);
  report.finalStatusText = await page.textContent("#status-text");
  report.finalConnectButton = await page.textContent("#connect");
  report.audio = await page.evaluate(() => window.voxloop.audio());
  report.pageErrorMessages = await page.evaluate(() => window.voxloop.errors);
  report.events = await page.evaluate(() => window.voxloop.events);
  report.botAudioElementsAfter = await page.$$eval("audio[data-voxloop]", (els) => els.length);
  await shoot(page, "3-disconnected");
});
