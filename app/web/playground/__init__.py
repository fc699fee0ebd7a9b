"""The browser side: GraphiQL at /graphql and the live dashboard at /dashboard.

Everything is served from this package (no CDN, no build step): the pages, the dashboard's
script and the vendored GraphiQL, React and graphql-ws files under ``static/vendor``.
"""
