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
  }),
);
