import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { covers, verifySasToken, type AuthorizationRule } from "./sas.js";
import type { Faults } from "./faults.js";
import {
  SUBSCRIPTION_PATH,
  type Entity,
  type EntityKind,
  type EntitySettings,
  type EntityStatus,
  type Store,
} from "./store.js";

/**
 * The ATOM management API that ServiceBusAdministrationClient speaks (always HTTPS): create, get, list
 * and delete queues, topics and subscriptions, with runtime counts read from the broker's store.
 */

const SB_NS = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect";
const COUNT_NS = "http://schemas.microsoft.com/netservices/2011/06/servicebus";
const API_VERSION = "2021-05";
const MAX_TIMESPAN = "P10675199DT2H48M5.4775807S";
const STATUSES: readonly EntityStatus[] = ["Active", "Disabled", "SendDisabled", "ReceiveDisabled"];

export interface AdminServerOptions {
  host: string;
  port: number;
  tls: { key: string; cert: string };
  /** Shared access rules: a SAS token must be signed with one that has Manage. */
  rules: readonly AuthorizationRule[];
  store: Store;
  /** Busy answers a test asked for (faults.ts). */
  faults?: Faults;
}

/** ISO 8601 duration (as .NET writes TimeSpans: `PT1M`, `P1DT2H`, `PT0.5S`) in ms; undefined if unparsable. */
export function parseDuration(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(text.trim());
  if (!match) return undefined;
  const [, d, h, m, s] = match;
  return Math.round(
    ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(m ?? 0)) * 60_000 + Number(s ?? 0) * 1000,
  );
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return MAX_TIMESPAN;
  const totalSeconds = ms / 1000;
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = Math.round((totalSeconds % 60) * 1000) / 1000;
  let out = "P" + (days ? `${days}D` : "");
  const time = (hours ? `${hours}H` : "") + (minutes ? `${minutes}M` : "") + (seconds ? `${seconds}S` : "");
  out += time ? `T${time}` : days ? "" : "T0S";
  return out;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** The text of `<Name>` in a description (namespace prefixes ignored). */
function field(xml: string, name: string): string | undefined {
  const match = new RegExp(`<(?:\\w+:)?${name}(?:\\s[^>]*)?>([^<]*)</(?:\\w+:)?${name}>`).exec(xml);
  return match ? (match[1] as string).trim() : undefined;
}

function settingsFrom(xml: string): Partial<EntitySettings> {
  const settings: Partial<EntitySettings> = {};
  const lock = parseDuration(field(xml, "LockDuration"));
  if (lock !== undefined) settings.lockDurationMs = lock;
  const maxDelivery = Number(field(xml, "MaxDeliveryCount"));
  if (Number.isInteger(maxDelivery) && maxDelivery > 0) settings.maxDeliveryCount = maxDelivery;
  const ttlText = field(xml, "DefaultMessageTimeToLive");
  const ttl = ttlText === MAX_TIMESPAN ? undefined : parseDuration(ttlText);
  if (ttl !== undefined) settings.defaultTtlMs = ttl;
  const status = field(xml, "Status") as EntityStatus | undefined;
  if (status !== undefined && STATUSES.includes(status)) settings.status = status;
  const dlOnExpiry = field(xml, "DeadLetteringOnMessageExpiration");
  if (dlOnExpiry !== undefined) settings.deadLetteringOnMessageExpiration = dlOnExpiry === "true";
  return settings;
}

function countDetails(entity: Entity): string {
  const counts = entity.counts();
  return (
    `<CountDetails xmlns:d2p1="${COUNT_NS}">` +
    `<d2p1:ActiveMessageCount>${counts.active}</d2p1:ActiveMessageCount>` +
    `<d2p1:DeadLetterMessageCount>${counts.deadLetter}</d2p1:DeadLetterMessageCount>` +
    `<d2p1:ScheduledMessageCount>0</d2p1:ScheduledMessageCount>` +
    `<d2p1:TransferMessageCount>0</d2p1:TransferMessageCount>` +
    `<d2p1:TransferDeadLetterMessageCount>0</d2p1:TransferDeadLetterMessageCount>` +
    `</CountDetails>`
  );
}

function description(entity: Entity): string {
  const s = entity.settings;
  const times =
    `<CreatedAt>${entity.createdAt.toISOString()}</CreatedAt>` +
    `<UpdatedAt>${entity.updatedAt.toISOString()}</UpdatedAt>` +
    `<AccessedAt>${entity.accessedAt.toISOString()}</AccessedAt>`;
  const common =
    `<DefaultMessageTimeToLive>${formatDuration(s.defaultTtlMs)}</DefaultMessageTimeToLive>` +
    `<EnableBatchedOperations>true</EnableBatchedOperations>` +
    `<Status>${s.status}</Status>` +
    `<AutoDeleteOnIdle>${MAX_TIMESPAN}</AutoDeleteOnIdle>` +
    `<EntityAvailabilityStatus>Available</EntityAvailabilityStatus>`;
  const counts = entity.counts();
  const size = entity.messages.length * 256;
  if (entity.kind === "queue") {
    return (
      `<QueueDescription xmlns="${SB_NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
      `<LockDuration>${formatDuration(s.lockDurationMs)}</LockDuration>` +
      `<MaxSizeInMegabytes>1024</MaxSizeInMegabytes>` +
      `<RequiresDuplicateDetection>false</RequiresDuplicateDetection>` +
      `<RequiresSession>false</RequiresSession>` +
      `<DeadLetteringOnMessageExpiration>${s.deadLetteringOnMessageExpiration}</DeadLetteringOnMessageExpiration>` +
      `<DuplicateDetectionHistoryTimeWindow>PT10M</DuplicateDetectionHistoryTimeWindow>` +
      `<MaxDeliveryCount>${s.maxDeliveryCount}</MaxDeliveryCount>` +
      `<SizeInBytes>${size}</SizeInBytes><MessageCount>${counts.total}</MessageCount>` +
      times +
      countDetails(entity) +
      `<EnablePartitioning>false</EnablePartitioning><EnableExpress>false</EnableExpress>` +
      common +
      `</QueueDescription>`
    );
  }
  if (entity.kind === "topic") {
    return (
      `<TopicDescription xmlns="${SB_NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
      `<MaxSizeInMegabytes>1024</MaxSizeInMegabytes>` +
      `<RequiresDuplicateDetection>false</RequiresDuplicateDetection>` +
      `<DuplicateDetectionHistoryTimeWindow>PT10M</DuplicateDetectionHistoryTimeWindow>` +
      `<SizeInBytes>0</SizeInBytes><SubscriptionCount>${entity.subscriptions.size}</SubscriptionCount>` +
      `<SupportOrdering>true</SupportOrdering>` +
      times +
      countDetails(entity) +
      `<EnablePartitioning>false</EnablePartitioning><EnableExpress>false</EnableExpress>` +
      common +
      `</TopicDescription>`
    );
  }
  return (
    `<SubscriptionDescription xmlns="${SB_NS}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">` +
    `<LockDuration>${formatDuration(s.lockDurationMs)}</LockDuration>` +
    `<RequiresSession>false</RequiresSession>` +
    `<DeadLetteringOnMessageExpiration>${s.deadLetteringOnMessageExpiration}</DeadLetteringOnMessageExpiration>` +
    `<DeadLetteringOnFilterEvaluationExceptions>true</DeadLetteringOnFilterEvaluationExceptions>` +
    `<MessageCount>${counts.total}</MessageCount>` +
    `<MaxDeliveryCount>${s.maxDeliveryCount}</MaxDeliveryCount>` +
    times +
    countDetails(entity) +
    common +
    `</SubscriptionDescription>`
  );
}

export class AdminServer {
  private server: Server | undefined;
  private port = 0;

  constructor(private readonly options: AdminServerOptions) {}

  async start(): Promise<number> {
    const server = createServer({ key: this.options.tls.key, cert: this.options.tls.cert }, (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.send(res, 500, `<Error><Code>500</Code><Detail>${escapeXml(String(error))}</Detail></Error>`);
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private base(): string {
    return `https://${this.options.host}:${this.port}`;
  }

  private entry(entity: Entity): string {
    const url = `${this.base()}/${entity.path}?api-version=${API_VERSION}`;
    return (
      `<entry xmlns="http://www.w3.org/2005/Atom">` +
      `<id>${escapeXml(url)}</id>` +
      `<title type="text">${escapeXml(entity.name)}</title>` +
      `<published>${entity.createdAt.toISOString()}</published>` +
      `<updated>${entity.updatedAt.toISOString()}</updated>` +
      `<author><name>servicebus-emulator</name></author>` +
      `<link rel="self" href="${escapeXml(url)}"/>` +
      `<content type="application/xml">${description(entity)}</content>` +
      `</entry>`
    );
  }

  private feed(title: string, entities: Entity[]): string {
    return (
      `<feed xmlns="http://www.w3.org/2005/Atom">` +
      `<title type="text">${escapeXml(title)}</title>` +
      `<id>${escapeXml(`${this.base()}/${title}?api-version=${API_VERSION}`)}</id>` +
      `<updated>${new Date(this.options.store.now()).toISOString()}</updated>` +
      entities.map((e) => this.entry(e)).join("") +
      `</feed>`
    );
  }

  private send(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { "content-type": "application/atom+xml;type=entry;charset=utf-8" });
    res.end(`<?xml version="1.0" encoding="utf-8"?>${body}`);
  }

  private error(res: ServerResponse, status: number, detail: string): void {
    this.send(res, status, `<Error><Code>${status}</Code><Detail>${escapeXml(detail)}</Detail></Error>`);
  }

  /** Why the Authorization header does not allow managing `path` (undefined: it does). */
  private refusal(authorization: string, path: string): string | undefined {
    // Entra ID is not emulated: a bearer token is taken at its word.
    if (/^Bearer\s/i.test(authorization)) return undefined;
    const verdict = verifySasToken(authorization, this.options.rules, this.options.store.now());
    if (!verdict.ok) return verdict.description;
    if (!covers(verdict.resourcePath, path.toLowerCase()))
      return `InvalidAudience: The token is for '${verdict.resourcePath}', not for '${path}'.`;
    if (!verdict.rights.includes("Manage"))
      return `Unauthorized: Manage claim(s) are required for this operation (rule '${verdict.rule}' has ${verdict.rights.join(", ")}).`;
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    if (!req.headers.authorization)
      return this.error(res, 401, "MissingToken: the Authorization header is required.");
    const url = new URL(req.url ?? "/", this.base());
    const path = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, "");
    const refusal = this.refusal(req.headers.authorization, path);
    if (refusal) return this.error(res, 401, refusal);
    const store = this.options.store;
    const subscriptionList = /^(.+)\/Subscriptions$/i.exec(path);

    if (req.method === "GET") {
      if (/^\$Resources\/Queues$/i.test(path))
        return this.send(res, 200, this.feed("Queues", store.list("queue")));
      if (/^\$Resources\/Topics$/i.test(path))
        return this.send(res, 200, this.feed("Topics", store.list("topic")));
      if (subscriptionList) {
        const topic = store.get(subscriptionList[1] as string);
        return this.send(res, 200, this.feed(path, topic ? [...topic.subscriptions.values()] : []));
      }
      const entity = store.get(path);
      // A missing entity is 200 with an empty feed: the client turns that into MessageEntityNotFoundError.
      return this.send(res, 200, entity ? this.entry(entity) : this.feed(path, []));
    }

    if (req.method === "PUT") {
      const busyAfterMs = this.options.faults?.takeBusyAdminWrite();
      if (busyAfterMs !== undefined) {
        await new Promise((resolve) => setTimeout(resolve, busyAfterMs));
        return this.error(
          res,
          503,
          "ServerBusy: the request was not processed (a fault asked for by the test).",
        );
      }
      const kind: EntityKind | undefined = /SubscriptionDescription/.test(body)
        ? "subscription"
        : /TopicDescription/.test(body)
          ? "topic"
          : /QueueDescription/.test(body)
            ? "queue"
            : undefined;
      if (!kind)
        return this.error(
          res,
          400,
          "The request body must hold a QueueDescription, TopicDescription or SubscriptionDescription.",
        );
      const existing = store.get(path);
      if (req.headers["if-match"] === "*") {
        if (!existing) return this.error(res, 404, `The messaging entity '${path}' was not found.`);
        existing.settings = { ...existing.settings, ...settingsFrom(body) };
        existing.updatedAt = new Date(store.now());
        return this.send(res, 200, this.entry(existing));
      }
      if (existing) return this.error(res, 409, `The messaging entity '${path}' already exists.`);
      const topicName = SUBSCRIPTION_PATH.exec(path)?.[1];
      if (kind === "subscription" && (!topicName || store.get(topicName)?.kind !== "topic")) {
        return this.error(res, 404, `The messaging entity '${topicName ?? path}' could not be found.`);
      }
      try {
        const entity = store.create(kind, path, settingsFrom(body));
        return this.send(res, 201, this.entry(entity));
      } catch (error) {
        return this.error(res, 400, error instanceof Error ? error.message : String(error));
      }
    }

    if (req.method === "DELETE") {
      if (!store.delete(path)) return this.error(res, 404, `The messaging entity '${path}' was not found.`);
      res.writeHead(200).end();
      return;
    }

    return this.error(res, 405, `${req.method ?? "?"} is not supported.`);
  }
}
