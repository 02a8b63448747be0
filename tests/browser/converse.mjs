// One spoken exchange in voxloop's web page, in headless Chromium: the fake microphone plays a
// question once (``%noloop``), the bot answers, the page disconnects. Prints one JSON report on
// stdout: the page's events, its audio figures and its conversation view. Every wait is on a
// condition in the page, never a fixed delay.
//
//   node converse.mjs --url http://127.0.0.1:PORT/ --wav mic.wav --profile DIR [--transport webrtc]
//                     [--bot-sound-seconds 0.5] [--screenshots DIR] [--timeout-ms 20000]

import {
  chooseTransport,
  connect,
  conversationView,
  disconnect,
  driverOptions,
  newReport,
  openPage,
  runDriver,
  shoot,
  waiter,
} from "./browser.mjs";

const opts = driverOptions({
  transport: { type: "string", default: "websocket" },
  "bot-sound-seconds": { type: "string", default: "0.5" },
  screenshots: { type: "string" },
});
const botSoundSeconds = Number(opts["bot-sound-seconds"]);

const report = newReport();
const until = waiter(report, Number(opts["timeout-ms"]));
// Played once: a looping file would ask the bot the same question again and again.
const wav = `${opts.wav}%noloop`;
await runDriver(opts, report, async (page) => {
  report.stage = "open page";
  await openPage(page, opts.url, until);
  report.stage = `choose ${opts.transport}`;
  await chooseTransport(page, opts.transport, until);
  report.stage = "connect";
  await connect(page, until);
  // The browser's processing of the mic as captured (the page asks for it: see MIC_PROCESSING).
  report.micSettings = await page.evaluate(() => {
    const track = window.voxloop.client.tracks().local.audio;
    if (!track) return null;
    const { echoCancellation, autoGainControl, noiseSuppression } = track.getSettings();
    return { echoCancellation, autoGainControl, noiseSuppression };
  });

  // The fake mic's file started with the capture (at Connect); its lead-in silence covers the
  // connection, and the test checks that the bot was ready before the question began.
  await until(page, "a final user transcript", () =>
    window.voxloop.events.some((e) => e.name === "onUserTranscript" && e.data?.final),
  );
  await until(page, "the bot's answer to start", () =>
    window.voxloop.events.some((e) => e.name === "onBotStartedSpeaking"),
  );
  await until(
    page,
    `the bot to stop speaking, after at least ${botSoundSeconds} s of its speech reached the page`,
    (seconds) => {
      const { events } = window.voxloop;
      const started = events.findIndex((e) => e.name === "onBotStartedSpeaking");
      const stopped = events.findIndex((e, i) => i > started && e.name === "onBotStoppedSpeaking");
      return stopped > started && window.voxloop.audio().bot.soundSeconds >= seconds;
    },
    botSoundSeconds,
  );
  report.audioConnected = await page.evaluate(() => window.voxloop.audio());
  report.conversation = await conversationView(page);
  await shoot(page, opts.screenshots, `conversation-${opts.transport}`);

  report.stage = "disconnect";
  await disconnect(page, until);
  report.finalState = await page.evaluate(() => window.voxloop.client.state);
  report.finalStatusText = await page.textContent("#status-text");
  report.audio = await page.evaluate(() => window.voxloop.audio());
  report.timings = await page.evaluate(() => window.voxloop.timings);
  report.pageErrorMessages = await page.evaluate(() => window.voxloop.errors);
  report.events = await page.evaluate(() => window.voxloop.events);
  report.botAudioElementsAfter = await page.$$eval("audio[data-voxloop]", (els) => els.length);
}, { wav });
