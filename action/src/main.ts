import { post } from "./post.js";
import { run } from "./run.js";
import { isPost } from "./state.js";

/** One bundle serves both steps of `action.yml`: the main step, then the post step. */
export function main(): Promise<void> {
  return isPost() ? post() : run();
}
