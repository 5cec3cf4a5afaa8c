// A few calls an app makes, typed with the types openapi-typescript
// generates from openapi.yaml (fieldsync.d.ts, built by `npm run types`).
// It only has to type-check: if the contract stops generating usable
// types, or the shapes an app relies on change, tsc fails in CI.
import type { components, paths } from "./fieldsync";

type Schemas = components["schemas"];

type LoginBody = paths["/v1/auth/login"]["post"]["requestBody"]["content"]["application/json"];
type LoginAnswer = paths["/v1/auth/login"]["post"]["responses"]["200"]["content"]["application/json"];
type PushBody = paths["/v1/sync/push"]["post"]["requestBody"]["content"]["application/json"];
type PullAnswer = paths["/v1/sync/pull"]["get"]["responses"]["200"]["content"]["application/json"];

export const login: LoginBody = {
  email: "rep1@demo.test",
  password: "demo-pass-1234",
  device_id: "3f6c1a8e-2b4d-4c1e-9a7f-5d2e8b0c6a14",
};

export function bearer(answer: LoginAnswer): string {
  return `Bearer ${answer.access_token}`;
}

export function logVisit(seq: number, id: string, accountId: string, ms: number): PushBody {
  const mutation: Schemas["Mutation"] = {
    seq,
    entity: "visits",
    id,
    op: "upsert",
    hlc: { ms, counter: 0 },
    fields: { account_id: accountId, outcome: "follow_up", notes: "Met the buyer" },
  };
  return { schema_version: 1, mutations: [mutation] };
}

export function nextCursor(page: PullAnswer): string | undefined {
  return page.has_more || page.changes.length > 0 ? page.cursor : undefined;
}

export function rejectedCodes(page: PullAnswer): string[] {
  return page.rejections.map((r: Schemas["Rejection"]) => r.code);
}
