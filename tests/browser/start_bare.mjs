// The page's published client (PipecatClient + SmallWebRTCTransport, as the page builds it)
// started the bare way: startBotAndConnect({endpoint: "/start"}), no requestData, so the POST has
// no body. Prints one JSON report: what /start was sent and answered, bot-ready, a request's reply.
//
//   node start_bare.mjs --url http://127.0.0.1:PORT/ --wav mic.wav --profile DIR [--timeout-ms 20000]

import { chooseTransport, driverOptions, newReport, openPage, runDriver, waiter } from "./browser.mjs";

const opts = driverOptions({});

const report = newReport();
const until = waiter(report, Number(opts["timeout-ms"]));
await runDriver(opts, report, async (page) => {
  report.startRequests = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname === "/start") {
      report.startRequests.push({ method: request.method(), body: request.postData() ?? null });
    }
  });

  report.stage = "open page";
  await openPage(page, opts.url, until);
  await chooseTransport(page, "webrtc", until);

  report.stage = "startBotAndConnect";
  report.connectError = await page.evaluate(async () => {
    try {
      await window.voxloop.client.startBotAndConnect({ endpoint: "/start" });
      return null;
    } catch (error) {
      return String(error?.message ?? JSON.stringify(error));
    }
  });
  if (report.connectError) throw new Error(`startBotAndConnect failed: ${report.connectError}`);
  await until(page, "onBotReady", () => window.voxloop.events.some((e) => e.name === "onBotReady"));
  const event = (name) => window.voxloop.events.find((e) => e.name === name)?.data ?? null;
  report.started = await page.evaluate(event, "onBotStarted");
  report.botReady = await page.evaluate(event, "onBotReady");
  report.state = await page.evaluate(() => window.voxloop.client.state);

  report.stage = "client request";
  report.requestReply = await page.evaluate(() => window.voxloop.client.sendClientRequest("ping", { n: 7 }));

  report.stage = "disconnect";
  await page.evaluate(() => window.voxloop.client.disconnect());
  await until(page, "state disconnected", () => window.voxloop.client.state === "disconnected");
});
