/**
 * `f` applied to an answer that is ready now or later, without making a ready one wait (a phase
 * answering synchronously keeps answering synchronously: no promise, no extra tick).
 */
export function mapAnswer(res: Response | Promise<Response>, f: (r: Response) => Response): Response | Promise<Response> {
  return res instanceof Response ? f(res) : res.then(f);
}
