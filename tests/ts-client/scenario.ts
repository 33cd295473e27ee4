// A FerryMQ client nobody here wrote: openapi-fetch typed by the types openapi-typescript
// generates at test time from the gateway's own /openapi.json (both pinned in package.json).
// `run.mjs` generates `schema.ts` beside a copy of this file, type-checks it with
// `tsc --strict` (a spec change that breaks this client fails there), compiles it and runs
// it: create a topic and a group, publish, receive, read the lag (one in flight), ack, read
// the lag again (nothing left), look the message up by id, and read a refused request as the
// typed error body.
//
// Usage (after run.mjs compiled it): node scenario.js BASE_URL TOKEN

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];

// Node's globals without @types/node (one package less to pin): only what is used here.
declare const process: { argv: string[]; exit(code: number): never };

function fail(message: string): never {
  console.error(`ts-client scenario failed: ${message}`);
  process.exit(1);
}

function check(condition: boolean, message: string, value?: unknown): void {
  if (!condition) fail(value === undefined ? message : `${message}: ${JSON.stringify(value)}`);
}

/** The body of a successful answer with exactly `status`, or the failure. */
function expect<T>(
  what: string,
  status: number,
  r: { data?: T; error?: unknown; response: Response },
): T {
  if (r.response.status !== status || r.data === undefined) {
    fail(
      `${what}: expected ${status}, got ${r.response.status}: ${JSON.stringify(r.error ?? r.data)}`,
    );
  }
  return r.data;
}

async function main(): Promise<void> {
  const [base, token] = process.argv.slice(2);
  if (!base || !token) fail("usage: scenario.js BASE_URL TOKEN");
  const client = createClient<paths>({
    baseUrl: base,
    headers: { Authorization: `Bearer ${token}` },
  });
  const topic = "ts-orders";
  const group = "ts-billing";

  const created: Schemas["TopicInfo"] = expect(
    "create the topic",
    201,
    await client.PUT("/v1/topics/{topic}", {
      params: { path: { topic } },
      body: { type: "normal", queues: 2 },
    }),
  );
  check(created.topic === topic && created.queues === 2, "created topic", created);

  const groupBody: Schemas["CreateGroupRequest"] = {
    subscriptions: [{ topic, filter: "TagA" }],
    mode: "clustering",
    start_from: "earliest",
  };
  const g = expect(
    "create the group",
    201,
    await client.PUT("/v1/groups/{group}", { params: { path: { group } }, body: groupBody }),
  );
  check(g.mode === "clustering" && g.subscriptions.length === 1, "created group", g);

  const sent: Schemas["PublishMessage"] = {
    body: "hello from typescript",
    keys: ["order-7"],
    tag: "TagA",
    properties: { region: "hz" },
  };
  const published = expect(
    "publish",
    200,
    await client.POST("/v1/topics/{topic}/messages", {
      params: { path: { topic } },
      body: { messages: [sent] },
    }),
  );
  check(published.results.length === 1, "one publish result", published);
  const messageId: string = published.results[0].message_id;

  const received = expect(
    "receive",
    200,
    await client.POST("/v1/groups/{group}/receive", {
      params: { path: { group } },
      body: { max_messages: 10, wait_ms: 5000 },
    }),
  );
  check(
    received.messages.length === 1 && received.messages[0].message_id === messageId,
    "received the published message",
    received,
  );
  const m: Schemas["Message"] = received.messages[0];
  check(
    m.body === sent.body &&
      m.tag === "TagA" &&
      m.keys?.join() === "order-7" &&
      m.properties?.region === "hz" &&
      m.delivery_attempt === 1 &&
      typeof m.receipt_handle === "string",
    "received message",
    m,
  );

  const lag = async (): Promise<Schemas["QueueLag"][]> => {
    const info = expect(
      "get the group",
      200,
      await client.GET("/v1/groups/{group}", { params: { path: { group } } }),
    );
    return info.lag ?? fail(`no lag in the group's answer: ${JSON.stringify(info)}`);
  };
  const sum = (qs: Schemas["QueueLag"][], f: (q: Schemas["QueueLag"]) => number): number =>
    qs.reduce((n, q) => n + f(q), 0);

  let queues = await lag();
  check(sum(queues, (q) => q.inflight) === 1, "one message in flight before the ack", queues);

  const acked = expect(
    "ack",
    200,
    await client.POST("/v1/groups/{group}/ack", {
      params: { path: { group } },
      body: { receipt_handles: [m.receipt_handle ?? fail("no receipt handle")] },
    }),
  );
  check(acked.results.length === 1 && acked.results[0].ok, "the ack succeeded", acked);

  queues = await lag();
  check(sum(queues, (q) => q.inflight) === 0, "nothing in flight after the ack", queues);
  check(sum(queues, (q) => q.committed_offset) === 1, "one offset committed", queues);
  check(sum(queues, (q) => q.max_offset - q.committed_offset) === 0, "lag 0 after the ack", queues);
  check(sum(queues, (q) => q.lag ?? 0) === 0, "the lag field is 0 after the ack", queues);

  const found = expect(
    "look the message up",
    200,
    await client.GET("/v1/topics/{topic}/messages/{message_id}", {
      params: { path: { topic, message_id: messageId } },
    }),
  );
  check(
    found.message_id === messageId && found.body === sent.body && found.tag === "TagA",
    "looked-up message",
    found,
  );

  // A refused request: openapi-fetch gives the error body typed by the document.
  const refused = await client.POST("/v1/topics/{topic}/messages", {
    params: { path: { topic: "ts-nowhere" } },
    body: { messages: [{ body: "lost" }] },
  });
  if (refused.error === undefined) {
    fail(`publish to an unknown topic was accepted: ${JSON.stringify(refused.data)}`);
  }
  const error: Schemas["ErrorBody"] = refused.error;
  const expected: Schemas["ErrorCode"] = "TopicNotFound";
  check(
    refused.response.status === 404 && error.error.code === expected && error.error.message !== "",
    "publish to an unknown topic is 404 TopicNotFound",
    { status: refused.response.status, error },
  );

  console.log(JSON.stringify({ published: messageId, acked: true, lag: 0 }));
}

main().catch((e: unknown) => fail(e instanceof Error ? (e.stack ?? e.message) : String(e)));
