/** What an AWS SDK v3 call failed with: its error name (S3's code) and HTTP status; "no error" when it succeeded. */
export async function sdkErrorOf(p: Promise<unknown>): Promise<{ code: string; status: number }> {
  try {
    await p;
  } catch (e) {
    const err = e as { name: string; $metadata?: { httpStatusCode?: number } };
    return { code: err.name, status: err.$metadata?.httpStatusCode ?? 0 };
  }
  return { code: "no error", status: 0 };
}
