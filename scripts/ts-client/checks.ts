// Hand-written beside the generated calls (scripts/ts-client.sh): the list's parameters are
// typed as the server reads them, so a typo in an enum value does not compile.
import createClient from "openapi-fetch";
import type { paths } from "./schema";

const client = createClient<paths>({ baseUrl: "http://127.0.0.1:8000/api" });

export async function listWithEveryFilter(): Promise<void> {
  await client.GET("/tasks", {
    params: {
      query: {
        status: "pending",
        tag: ["work", "home"],
        priority: ["high", "low"],
        sort: "due_date",
        order: "asc",
        limit: 50,
        overdue: true,
      },
    },
  });
  await client.GET("/{user_id}/tasks", {
    params: { path: { user_id: "alice" }, query: { priority: ["medium"] } },
  });
  // @ts-expect-error: "urgent" is not a priority.
  await client.GET("/tasks", { params: { query: { priority: ["urgent"] } } });
  // @ts-expect-error: "soon" is not a sort field.
  await client.GET("/tasks", { params: { query: { sort: "soon" } } });
}
