-- Argo CD health check for mtls.dev/MtlsCertificate (mtls-operator).
-- Install: resource.customizations.health.mtls.dev_MtlsCertificate in argocd-cm (docs/operations/argocd.md).
--
-- Decisions read conditions by type, never by position (argo-cd#16523), and a certificate that is in service
-- stays Healthy while its renewal waits for the partner's signature (argo-cd#18597: cert-manager Certificates
-- showed Progressing for the whole renewal).
local hs = {}

-- Reasons of Ready=False that need a person: the operator cannot get out of them on its own.
local degraded = {
  Expired = true, CSRRejected = true, CSRDenied = true, CSRFailed = true, CANotFound = true, CAInvalid = true,
  InvalidSpec = true, SecretConflict = true, InvalidCertificate = true, KeyMismatch = true,
  CommonNameMismatch = true, NotYetValid = true, UntrustedChain = true, WrongUsage = true, InvalidChain = true,
  InvalidKey = true, KeySpecMismatch = true, SignerNotEnabled = true, CABundleNotFound = true,
  PolicyViolation = true, IssuerNotFound = true, IssuerNotReady = true,
}

local function condition(status, wanted)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or "Unknown"
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local status = obj.status
local ready = condition(status, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for mtls-operator to process the certificate"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for mtls-operator to act on spec generation " .. tostring(generation)
  return hs
end

if status.phase == "Expired" then
  hs.status = "Degraded"
  hs.message = "Certificate expired (" .. tostring(status.notAfter) .. "): " .. describe(ready)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  local renewal = condition(status, "RenewalDue")
  if ready.reason == "AwaitingSignature" then
    hs.message = "Certificate in service until " .. tostring(status.notAfter) ..
      "; renewal waiting for the partner's signature of the new CSR (kubectl mtls csr " .. obj.metadata.name .. ")"
  elseif renewal ~= nil and renewal.status == "True" then
    hs.message = "Certificate in service until " .. tostring(status.notAfter) .. "; renewal in progress"
  else
    hs.message = ready.message or "Certificate in service"
  end
  return hs
end

if ready.status == "False" and degraded[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
if ready.reason == "AwaitingSignature" then
  hs.message = "Waiting for the partner to sign the CSR in status.csr (get it with: kubectl mtls csr " ..
    obj.metadata.name .. " -n " .. tostring(obj.metadata.namespace) .. "): " .. (ready.message or "")
else
  hs.message = describe(ready)
end
return hs
