/**
 * What a web app bundles to upload through the S3 front from a browser: the AWS SDK's S3 client
 * and lib-storage's multipart Upload. browser-multipart.test.ts builds this file for the browser
 * (Bun.build, target browser) and serves it to the page.
 */
export { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
export { Upload } from "@aws-sdk/lib-storage";
