// @upstash/workflow against pushq's /v2 (tests/e2e/test_qstash_workflow.py): serve a
// workflow (run, sleep, call, run) on loopback, every request verified by the SDK's
// Receiver, trigger it with the workflow Client, print one JSON line of what it did.
// Usage: node workflow-smoke.mjs <pushq base url> <token> <current key> <next key>
import http from "node:http";
import { Client as QStashClient, Receiver } from "@upstash/qstash";
import { Client, serve } from "@upstash/workflow";

const [baseUrl, token, currentSigningKey, nextSigningKey] = process.argv.slice(2);
const qstashClient = new QStashClient({ baseUrl, token });
const receiver = new Receiver({ currentSigningKey, nextSigningKey });
let finish;
const finished = new Promise((resolve) => (finish = resolve));

const { handler } = serve(
  async (context) => {
    const doubled = await context.run("double", async () => context.requestPayload.n * 2);
    await context.sleep("nap", 1);
    const call = await context.call("echo", {
      url: `http://127.0.0.1:${server.address().port}/echo`,
      method: "POST",
      body: JSON.stringify({ doubled }),
    });
    await context.run("record", async () => {
      finish({ runId: context.workflowRunId, doubled, status: call.status, body: call.body });
      return "recorded";
    });
  },
  { qstashClient, receiver, retries: 0, disableTelemetry: true, env: {} },
);

let failed;
const failure = new Promise((resolve) => (failed = resolve));
const { handler: failing } = serve(
  async (context) => {
    await context.run("fine", async () => "fine");
    await context.run("boom", async () => {
      throw new Error("boom happened");
    });
  },
  {
    qstashClient,
    receiver,
    retries: 0,
    disableTelemetry: true,
    env: {},
    failureFunction: async ({ context, failStatus, failResponse }) => {
      failed({ runId: context.workflowRunId, failStatus, failResponse });
    },
  },
);

const server = http.createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  if (req.url === "/echo") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ echo: JSON.parse(Buffer.concat(chunks).toString()) }));
    return;
  }
  const url = `http://127.0.0.1:${server.address().port}${req.url}`;
  const request = new Request(url, {
    method: req.method,
    headers: req.headers,
    body: req.method === "GET" ? undefined : Buffer.concat(chunks),
  });
  const response = await (req.url === "/fails" ? failing : handler)(request);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${server.address().port}/order`;

const client = new Client({ baseUrl, token });
const { workflowRunId } = await client.trigger({ url, body: { n: 21 }, retries: 0 });
const timeout = setTimeout(() => {
  console.error("the workflow did not finish in time");
  process.exit(1);
}, 30000);
const done = await finished;
await client.trigger({ url: url.replace("/order", "/fails"), body: { n: 1 }, retries: 0 });
const failedRun = await failure;
clearTimeout(timeout);
await new Promise((resolve) => setTimeout(resolve, 500)); // the DELETE after the last step
console.log(JSON.stringify({ triggered: workflowRunId, ...done, failed: failedRun }));
server.close();
process.exit(0);
