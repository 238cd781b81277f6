//! The project as the engine sees it: its resources, the images they run, their order and
//! Helm releases, and the bring-up steps that gate them.

/// What the engine knows of the project: resources, the images they run, their order, and
/// the bring-up steps that gate them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    pub images: Vec<String>,
    pub resources: Vec<Node>,
    /// Everything waits for the doctor's checks (`Command::Doctor`, `Event::DoctorDone`):
    /// nothing is touched on a machine that cannot run the project.
    pub doctor: bool,
    /// Cluster resources wait for the cluster (`Command::PrepareCluster`,
    /// `Event::ClusterReady`).
    pub cluster: bool,
    /// Image builds wait for the cluster too: Minikube's image store is where they go. (With
    /// an existing cluster they go to a registry and start at once.)
    pub builds_need_cluster: bool,
    /// The manifest files (as the config shows them). With no cluster resource to deploy
    /// them, they are applied whole once the first builds ended (ConfigMaps, Services...).
    pub manifests: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub images: Vec<String>,
    pub depends_on: Vec<String>,
    /// Builds only on a trigger (after the first start).
    pub manual: bool,
    /// A `[[local]]` resource: its command runs on the machine, nothing is deployed.
    pub local: bool,
    /// The Helm release that deploys it: one upgrade creates every workload of a release,
    /// so they deploy together and `depends_on` between them cannot hold one back.
    pub release: Option<String>,
}
