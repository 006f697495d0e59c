import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HallpassError } from "#src/errors.js";
import { checkActive } from "#src/rules/grant-use.js";
import { GaveUp, NotGrantedInTime, Refusal, Unreachable } from "../../action/src/errors.js";
import { ticketOf } from "../../action/src/ticket.js";
import { notYet, POLL, waitForGrant } from "../../action/src/wait.js";
import { primaryBackend } from "../support/db.js";
import { insertGrant } from "../support/grants.js";
import { startTokenHarness, type TokenHarness } from "../support/token-service.js";

const pending = (message = "the grant on #12 is pending: it needs approval") =>
  new Refusal(403, "GRANT_NOT_ACTIVE", message, undefined);

/** The server's refusal as the Action reads it. */
const asRefusal = (error: unknown) => {
  if (!(error instanceof HallpassError)) throw error;
  return new Refusal(error.status, error.code, error.message, undefined);
};

/** A clock that only moves when the wait sleeps, and what it slept. */
function fakeTime() {
  let now = 1_000_000;
  const pauses: number[] = [];
  return {
    pauses,
    now: () => now,
    elapsed: () => now - 1_000_000,
    sleep: async (ms: number) => {
      pauses.push(ms);
      now += ms;
    },
    advance: (ms: number) => {
      now += ms;
    },
    random: () => 0.5,
  };
}

describe("which refusals the Action waits on", () => {
  const at = new Date("2026-11-23T18:00:00.000Z");
  const grant = (state: string, startsAt: Date | null = at) => ({
    state,
    resource: "payments-api",
    scopes: ["read"],
    startsAt,
    endsAt: new Date(at.getTime() + 3_600_000),
  });
  const kindOf = (state: string, now: Date) => {
    const refused = checkActive(grant(state), "#12", now);
    if (!refused) return "active";
    return notYet(new Refusal(403, refused.code, refused.message, undefined))?.kind ?? "final";
  };

  it("reads the exchange's words for each state of a grant", () => {
    const before = new Date(at.getTime() - 60_000);
    const during = new Date(at.getTime() + 60_000);
    const after = new Date(at.getTime() + 7_200_000);
    expect(kindOf("pending", during)).toBe("approval");
    expect(kindOf("active", before)).toBe("start");
    expect(kindOf("active", during)).toBe("active");
    expect(kindOf("active", after)).toBe("final");
    for (const state of ["revoked", "expired", "denied", "cancelled"]) {
      expect(kindOf(state, during), state).toBe("final");
    }
    const start = checkActive(grant("active"), "#12", before);
    expect(notYet(new Refusal(403, "GRANT_NOT_ACTIVE", start?.message ?? "", undefined))).toEqual({
      kind: "start",
      at,
    });
  });

  it("waits for a ticket with no grant yet, never for a refusal of the run or resource", () => {
    expect(
      notYet(new Refusal(404, "GRANT_NOT_FOUND", "ticket #12 has no grant", undefined)),
    ).toEqual({ kind: "request" });
    for (const code of [
      "TICKET_NOT_FOUND",
      "RESOURCE_MISMATCH",
      "RESOURCE_NOT_BOUND",
      "RUN_FORK",
      "RUN_COMMIT",
      "RUN_ACTOR",
      "SCOPE_NOT_GRANTED",
      "OIDC_AUDIENCE",
    ]) {
      expect(notYet(new Refusal(403, code, "the grant on #12 is pending", undefined)), code).toBe(
        null,
      );
    }
    expect(notYet(new Unreachable("connect ECONNREFUSED"))).toBeNull();
  });

  describe("the mint's words, when the grant changed after the checks", () => {
    let h: TokenHarness;
    beforeAll(async () => {
      h = await startTokenHarness(primaryBackend);
    });
    afterAll(() => h.close());
    const mintRefusal = async (options: Parameters<typeof insertGrant>[1]) => {
      const { grantId } = await insertGrant(h.db, options);
      return h
        .service()
        .mint({ grantId, subject: "run", channel: "actions" })
        .then(() => {
          throw new Error("minted");
        }, asRefusal);
    };

    it("pending, not started, revoked", async () => {
      expect(notYet(await mintRefusal({ state: "pending" }))).toEqual({ kind: "approval" });
      const startsAt = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3_600_000);
      const endsAt = new Date(startsAt.getTime() + 3_600_000);
      expect(notYet(await mintRefusal({ startsAt, endsAt }))).toEqual({
        kind: "start",
        at: startsAt,
      });
      expect(notYet(await mintRefusal({ state: "revoked" }))).toBeNull();
    });
  });
});

describe("waitForGrant", () => {
  it("asks once, and passes the refusal on as it is, without a wait", async () => {
    const refusal = pending();
    let calls = 0;
    const exchange = async () => {
      calls++;
      throw refusal;
    };
    await expect(waitForGrant(exchange, { waitS: 0, ticket: "#12" })).rejects.toBe(refusal);
    expect(calls).toBe(1);
  });

  it("asks again at growing pauses, saying what the ticket needs once per change", async () => {
    const time = fakeTime();
    const answers = [
      new Refusal(404, "GRANT_NOT_FOUND", "ticket #12 has no grant", undefined),
      pending(),
      pending(),
      pending(),
      pending(),
      pending(),
    ];
    const told: string[] = [];
    let calls = 0;
    const token = await waitForGrant(
      async () => {
        const answer = answers[calls++];
        if (answer) throw answer;
        return "token";
      },
      {
        waitS: 900,
        ticket: "acme/app#12",
        onWaiting: (refusal, leftMs) => told.push(`${refusal.code} ${leftMs}`),
        ...time,
      },
    );
    expect(token).toBe("token");
    expect(calls).toBe(7);
    expect(told).toEqual(["GRANT_NOT_FOUND 900000", `GRANT_NOT_ACTIVE ${900_000 - 10_000}`]);
    expect(time.pauses).toEqual([10_000, 15_000, 22_500, 30_000, 30_000, 30_000]);
    expect(POLL.maxMs).toBe(30_000);
  });

  it("spreads the pauses by ±10 %", async () => {
    for (const [random, first] of [
      [0, 9_000],
      [0.999_999, 11_000],
    ] as const) {
      const time = { ...fakeTime(), random: () => random };
      let calls = 0;
      await waitForGrant(
        async () => {
          if (calls++ === 0) throw pending();
          return null;
        },
        { waitS: 60, ticket: "#12", ...time },
      );
      expect(time.pauses[0]).toBeCloseTo(first, -1);
    }
  });

  it("asks a last time when the time is up, then names the ticket and what it still needs", async () => {
    const time = fakeTime();
    let calls = 0;
    const waiting = waitForGrant(
      async () => {
        calls++;
        time.advance(200); // each exchange takes a while
        throw pending();
      },
      { waitS: 30, ticket: "acme/app#12", ...time },
    );
    const error = await waiting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotGrantedInTime);
    expect(error).toMatchObject({
      ticket: "acme/app#12",
      waitS: 30,
      last: { code: "GRANT_NOT_ACTIVE" },
    });
    expect((error as Error).message).toBe(
      "the grant on acme/app#12 is still not active: the grant on #12 is pending: it needs approval (GRANT_NOT_ACTIVE)",
    );
    // 10 s, 15 s, then what is left of the 30 s.
    expect(time.pauses).toEqual([10_000, 15_000, 30_000 - 25_000 - 600]);
    expect(calls).toBe(4);
    expect(time.elapsed()).toBe(30_200);
  });

  it("fails at once on a final refusal, even after waiting", async () => {
    const time = fakeTime();
    const revoked = new Refusal(
      403,
      "GRANT_NOT_ACTIVE",
      "the grant on #12 has been revoked",
      undefined,
    );
    let calls = 0;
    await expect(
      waitForGrant(
        async () => {
          calls++;
          throw calls === 1 ? pending() : revoked;
        },
        { waitS: 900, ticket: "#12", ...time },
      ),
    ).rejects.toBe(revoked);
    expect(time.pauses).toEqual([10_000]);
  });

  it("waits for a scheduled start, and not for one after the time is up", async () => {
    const time = fakeTime();
    const startsIn = (ms: number) =>
      new Refusal(
        403,
        "GRANT_NOT_ACTIVE",
        `the grant on #12 starts at ${new Date(time.now() + ms).toISOString()}`,
        undefined,
      );
    let calls = 0;
    await waitForGrant(
      async () => {
        if (calls++ === 0) throw startsIn(120_000);
        return null;
      },
      { waitS: 300, ticket: "#12", ...time },
    );
    expect(time.pauses).toEqual([121_000]);

    const late = startsIn(600_000);
    await expect(
      waitForGrant(
        async () => {
          throw late;
        },
        { waitS: 300, ticket: "#12", ...time },
      ),
    ).rejects.toBe(late);
  });

  it("waits out a rate limit the retries could not, when it ends in time", async () => {
    const time = fakeTime();
    const limited = (s: number) =>
      new GaveUp(1, new Refusal(429, "RATE_LIMITED", "too many token requests", s));
    const paused: number[] = [];
    let calls = 0;
    await waitForGrant(
      async () => {
        if (calls++ === 0) throw limited(60);
        return null;
      },
      { waitS: 300, ticket: "#12", onPause: (_r, ms) => paused.push(ms), ...time },
    );
    expect(paused).toEqual([60_000]);

    const tooLong = limited(600);
    await expect(
      waitForGrant(
        async () => {
          throw tooLong;
        },
        { waitS: 300, ticket: "#12", ...time },
      ),
    ).rejects.toBe(tooLong);
  });

  it("does not wait on a server it cannot reach", async () => {
    const time = fakeTime();
    const down = new GaveUp(4, new Unreachable("connect ECONNREFUSED"));
    await expect(
      waitForGrant(
        async () => {
          throw down;
        },
        { waitS: 300, ticket: "#12", ...time },
      ),
    ).rejects.toBe(down);
    expect(time.pauses).toEqual([]);
  });
});

describe("ticketOf", () => {
  it("names a pull_request run's pull request, with its link", () => {
    expect(
      ticketOf(undefined, {
        repository: "acme/app",
        ref: "refs/pull/12/merge",
        serverUrl: "https://github.com",
      }),
    ).toBe("acme/app#12 (https://github.com/acme/app/pull/12)");
  });

  it("names the ticket input's issue, on GitHub Enterprise Server too", () => {
    expect(
      ticketOf(7, {
        repository: "acme/app",
        ref: "refs/heads/main",
        serverUrl: "https://github.acme.dev/",
      }),
    ).toBe("acme/app#7 (https://github.acme.dev/acme/app/issues/7)");
  });

  it("says what it knows, and no more", () => {
    expect(ticketOf(undefined, { ref: "refs/pull/12/merge" })).toBe("#12");
    expect(ticketOf(undefined, { repository: "acme/app", ref: "refs/heads/main" })).toBe(
      "the ticket",
    );
  });
});
