// CloudFront Functions (cloudfront-js-2.0) of the distribution, as source text. They run at the edge, not in
// Node: plain ES5-style JavaScript, no imports.
//
// Order of evaluation: CloudFront checks the signed URL (trusted key group) on the URL the viewer sent, before any
// viewer-request function runs, and strips Expires/Signature/Key-Pair-Id from what the function and the origin see
// (see docs/deploy.md "Signed URLs and the path rewrite"). The signature therefore covers
// https://<edge>/<cacheNodeId>/chunks/<hh>/<sha256>, and the rewrite below only changes what the origin is asked for.
// Were the order ever reversed, every download would fail closed with 403, never open.

/** Per cache node behaviour `/<id>/chunks/*`: drops the `/<id>` prefix, so the bucket key is `chunks/<hh>/<sha>`. */
export const STRIP_CACHE_NODE_PREFIX = `function handler(event) {
  var request = event.request;
  var slash = request.uri.indexOf('/', 1);
  request.uri = slash > 0 ? request.uri.substring(slash) : '/';
  return request;
}`;

/** Default behaviour: nothing outside a cache node's chunks is served. */
export const NOT_FOUND = `function handler(event) {
  return { statusCode: 404, statusDescription: 'Not Found' };
}`;
