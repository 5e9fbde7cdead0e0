// The API reference: api/openapi.yaml as the command service serves it (GET /api/openapi.json),
// rendered by Scalar, with the signed-in user's token prefilled for "Try it". Loaded on demand
// (App.tsx imports it lazily): the renderer is large and only this page needs it.
import { ApiReferenceReact } from "@scalar/api-reference-react";
import "@scalar/api-reference-react/style.css";
import { getToken } from "../lib/auth";

export default function ApiDocsPage() {
  return (
    <section className="api-docs" aria-label="Référence de l'API">
      <ApiReferenceReact
        configuration={{
          url: "/api/openapi.json",
          withDefaultFonts: false,
          telemetry: false,
          hideClientButton: true,
          authentication: { preferredSecurityScheme: "bearer", securitySchemes: { bearer: { token: getToken() ?? "" } } },
        }}
      />
    </section>
  );
}
