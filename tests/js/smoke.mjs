// Drives pushq's /v2 with the official JS client. Usage: node smoke.mjs <base> <token> <url>
// Prints one JSON line of what it saw; any failure exits non-zero.
import { Client, Receiver } from "@upstash/qstash";

const [baseUrl, token, url] = process.argv.slice(2);
const client = new Client({ baseUrl, token, retry: false });

const published = await client.publishJSON({ url, body: { from: "js" }, headers: { "X-From": "js" } });
const later = await client.publishJSON({ url, body: { later: true }, delay: 3600 });
const got = await client.messages.get(later.messageId);
if (got.url !== url) throw new Error(`messages.get url ${got.url}`);
await client.messages.delete(later.messageId);
const batch = await client.batchJSON([{ url, body: { n: 1 } }, { url, body: { n: 2 } }]);
const queued = await client.queue({ queueName: "js-queue" }).enqueueJSON({ url, body: { q: 1 } });
const dlq = await client.dlq.listMessages();
const logs = await client.logs({ filter: { messageId: published.messageId } });
const { scheduleId } = await client.schedules.create({ destination: url, cron: "0 0 1 1 *", body: "s" });
await client.schedules.pause({ schedule: scheduleId });
const paused = (await client.schedules.get(scheduleId)).isPaused;
await client.schedules.resume({ schedule: scheduleId });
const listed = (await client.schedules.list()).map((s) => s.scheduleId).includes(scheduleId);
await client.schedules.delete(scheduleId);
await client.urlGroups.addEndpoints({ name: "js-group", endpoints: [{ url: `${url}-group`, name: "g" }] });
const group = await client.urlGroups.get("js-group");
const fanned = await client.publishJSON({ urlGroup: "js-group", body: { g: 1 } });
await client.urlGroups.removeEndpoints({ name: "js-group", endpoints: [{ name: "g" }] });
const flow = await client.flowControl.get("js-key");
const retried = await client.dlq.retry({ dlqIds: ["no-such-dlq-id"] });
const keys = await fetch(`${baseUrl}/v2/keys`, { headers: { authorization: `Bearer ${token}` } });
const { current, next } = await keys.json();
const receiver = new Receiver({ currentSigningKey: current, nextSigningKey: next });
console.log(
  JSON.stringify({
    published: published.messageId,
    batch: batch.map((b) => b.messageId),
    queued: queued.messageId,
    dlq: Array.isArray(dlq.messages),
    logs: logs.logs.map((l) => l.state),
    receiver: typeof receiver.verify,
    schedule: { paused, listed },
    group: group.endpoints.map((e) => e.name),
    fanned: fanned.map((f) => f.messageId),
    flow: flow.flowControlKey,
    retried: retried.responses.length,
  }),
);
