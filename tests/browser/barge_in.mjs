// A barge-in in voxloop's web page, in headless Chromium: the fake microphone plays (once) a
// question, a silence, and a second utterance that lands while the bot's long answer plays. The
// driver waits for the answer to start, for the barge-in (the page's second user turn), for the
// interrupted answer to stop, then for the bot's reply to the second utterance, and disconnects.
// Every event the page records carries the bot audio the page had received when it arrived
// (``botSamples``, 24 kHz samples), so the test can tell where the answer was cut and that its audio
// stopped. Prints one JSON report on stdout. Every wait is on a condition in the page.
//
//   node barge_in.mjs --url http://127.0.0.1:PORT/ --wav mic.wav --profile DIR
//                     [--screenshots DIR] [--timeout-ms 30000]

import {
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

const opts = driverOptions({ screenshots: { type: "string" } }, { timeoutMs: "30000" });

const report = newReport();
const until = waiter(report, Number(opts["timeout-ms"]));
// Played once: a looping file would barge in again and again.
const wav = `${opts.wav}%noloop`;
await runDriver(opts, report, async (page) => {
  report.stage = "open page";
  await openPage(page, opts.url, until);
  // Stamp every event with the bot audio the page had received when it was recorded, and give the
  // waits below a finder: the index of the first event of a name after an index.
  await page.evaluate(() => {
    window.voxloopFind = (name, after = -1, test = () => true) =>
      window.voxloop.events.findIndex((e, i) => i > after && e.name === name && test(e));
    const { events } = window.voxloop;
    const push = events.push.bind(events);
    events.push = (event) => push({ ...event, botSamples: window.voxloop.audio()?.bot.samples ?? 0 });
  });
  report.stage = "connect";
  await connect(page, until);

  await until(page, "the question's final transcript", () =>
    window.voxloopFind("onUserTranscript", -1, (e) => e.data?.final) >= 0,
  );
  await until(page, "the answer to start", () => window.voxloopFind("onBotStartedSpeaking") >= 0);
  // The server tells of the interruption (bot-stopped-speaking) and of the user's turn
  // (user-started-speaking) in either order.
  await until(page, "the barge-in: a user turn, and the answer stopped", () => {
    const started = window.voxloopFind("onBotStartedSpeaking");
    return (
      window.voxloopFind("onUserStartedSpeaking", started) >= 0 &&
      window.voxloopFind("onBotStoppedSpeaking", started) >= 0
    );
  });
  await until(page, "the reply to the second utterance to be spoken", () => {
    const started = window.voxloopFind("onBotStartedSpeaking");
    const after = Math.max(
      window.voxloopFind("onUserStartedSpeaking", started),
      window.voxloopFind("onBotStoppedSpeaking", started),
    );
    const reply = window.voxloopFind("onBotStartedSpeaking", after);
    return reply >= 0 && window.voxloopFind("onBotStoppedSpeaking", reply) >= 0;
  });
  report.conversation = await conversationView(page);
  await shoot(page, opts.screenshots, "barge-in");

  report.stage = "disconnect";
  await disconnect(page, until);
  report.finalState = await page.evaluate(() => window.voxloop.client.state);
  report.audio = await page.evaluate(() => window.voxloop.audio());
  report.pageErrorMessages = await page.evaluate(() => window.voxloop.errors);
  report.events = await page.evaluate(() => window.voxloop.events);
}, { wav });
