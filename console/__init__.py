"""The web console: static assets (HTML, JS, CSS) that `cdp serve` serves at / and the stack deploys to S3 behind
CloudFront. No build step and nothing fetched from elsewhere: it works offline."""
